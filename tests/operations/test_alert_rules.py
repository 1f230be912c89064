"""The shipped alerting rules and dashboard: promtool checks and unit-tests the rules, and every
series they use is one the gateway exposes and docs/metrics.md describes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from gateway import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "asw-gateway.json"
DOCS = ROOT / "docs" / "metrics.md"
SERIES = re.compile(r"\b(asw_[a-z_]+)")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `scripts/ensure-services tools`"
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _exposed_families() -> set[str]:
    """Every family the gateway exposes: counted ones and those read at scrape time."""
    counted = {
        metric._name
        for metric in (
            metrics.ACCEPTED,
            metrics.REFUSED,
            metrics.DELIVERED,
            metrics.RETRIED,
            metrics.DEAD_LETTERED,
            metrics.INGEST_SECONDS,
            metrics.SUBMIT_TO_DELIVERY_SECONDS,
            metrics.JOURNAL_SECONDS,
            metrics.BREAKER,
        )
    }
    return counted | set(metrics.SCRAPE_TIME_FAMILIES)


def _alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    """``promtool check rules`` accepts deploy/prometheus/alerts.yml."""
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    """``promtool test rules alerts_test.yml``: each alert fires when it should and only then."""
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested() -> None:
    """Every alert of alerts.yml is named in at least one promtool test case."""
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - tested == set()


def test_rules_and_dashboard_use_only_exposed_series() -> None:
    """Every asw_ series named by an alert or a dashboard panel is one the gateway exposes."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panel_exprs = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(panel_exprs) >= 8
    used = {
        _family(name)
        for expr in [*_alert_expressions(), *panel_exprs]
        for name in SERIES.findall(expr)
    }
    assert used, "no series found"
    assert used - _exposed_families() == set()


def test_docs_describe_every_series() -> None:
    """docs/metrics.md names every exposed family and every alert."""
    text = DOCS.read_text(encoding="utf-8")
    missing = {name for name in _exposed_families() if f"`{name}" not in text}
    assert missing == set()
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {alert for alert in alerts if alert not in text} == set()
