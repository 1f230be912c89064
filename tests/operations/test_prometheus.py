"""A real two-worker gateway scraped by a real Prometheus; promtool checks the exposition.

TH is reached by ``http-push`` at a simulated NSW. Six documents are delivered; then the NSW
goes down, two more are retried until they are dead-lettered (and TH's breaker opens); three
malformed documents are refused. Every number read back must match, whichever worker answers
the scrape, and still match after one worker is killed and replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asw_toolkit.processes import GatewayProcess, free_port, http_push_party
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import delete_topology
from tests.faults.harness import (
    NswThread,
    documents,
    set_behaviour,
    wait_delivered,
    wait_until,
)
from tests.pki_fixtures import PkiBundle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DELIVERED = 6
DEAD = 2
REFUSED = 3


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `scripts/ensure-services tools` (Debian prometheus)"
    return path


def scrape(gateway: GatewayProcess) -> str:
    """One GET /metrics (auth is off in the test gateway, so no key is needed)."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples(text).items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


class Prometheus:
    """Debian's prometheus scraping one gateway every second, with the shipped alert rules."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {ALERTS}\n"
            "scrape_configs:\n  - job_name: asw-gateway\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
            encoding="utf-8",
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                _tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str, **params: str) -> Any:
        """GET an API path; the ``data`` of its JSON answer."""
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> float | None:
        """The value of an instant query with one result, or None when it has none."""
        result = self.get("/api/v1/query", query=expr)["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 30.0) -> float | None:
        """Poll ``expr`` until it equals ``expected``; return the last value seen."""
        deadline = time.monotonic() + timeout
        value: float | None = None
        while time.monotonic() < deadline:
            try:
                value = self.query(expr)
            except OSError:
                value = None
            if value == expected:
                return value
            time.sleep(0.5)
        return value

    def log_tail(self) -> str:
        """The end of Prometheus's own log."""
        return "\n".join(
            (self.workdir / "prometheus.log").read_text(errors="replace").splitlines()[-20:]
        )

    def stop(self) -> None:
        """Stop Prometheus and wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory, amqp_url: str, rsa_pki: PkiBundle
) -> Iterator[tuple[GatewayProcess, NswThread]]:
    """The gateway after the scenario: delivered, dead-lettered and refused documents."""
    workdir = tmp_path_factory.mktemp("metrics-gateway")
    with NswThread("TH") as nsw:
        gateway = GatewayProcess(
            workdir=workdir,
            amqp_url=amqp_url,
            pki_dir=rsa_pki.directory,
            workers=2,
            retry_schedule=(0.3, 0.6),
            parties_config={
                "TH": http_push_party(
                    nsw.documents_url,
                    timeout_seconds=2,
                    breaker_failures=2,
                    breaker_reset_seconds=600,
                )
            },
        )
        try:
            gateway.start()
            asyncio.run(_run_scenario(gateway, nsw))
            yield gateway, nsw
        finally:
            gateway.stop()
            asyncio.run(
                delete_topology(
                    amqp_url, Topology(gateway.prefix), MEMBER_STATES, gateway.retry_delays_ms
                )
            )


async def _run_scenario(gateway: GatewayProcess, nsw: NswThread) -> None:
    async with aiohttp.ClientSession() as session:

        async def post(body: bytes) -> int:
            # Each worker connects to the broker on its own: one may still answer 503 when the
            # other already made /readyz say 200. A 503 is not counted as accepted; try again.
            for _ in range(40):
                async with session.post(
                    gateway.url + "/v1/messages",
                    data=body,
                    headers={"Content-Type": "application/xml"},
                ) as response:
                    if response.status != 503:
                        return response.status
                await asyncio.sleep(0.25)
            return 503

        good = documents(DELIVERED)
        assert {await post(body) for body in good.values()} == {202}
        assert not await wait_delivered(nsw.url, good, timeout=30), gateway.log_tail()
        await set_behaviour(nsw.url, "down")
        doomed = documents(DEAD)
        assert {await post(body) for body in doomed.values()} == {202}
        malformed = [f"<FormD><broken id='{uuid.uuid4()}'>".encode() for _ in range(REFUSED)]
        assert {await post(body) for body in malformed} == {400}

        async def all_dead() -> bool:
            async with session.get(gateway.url + "/v1/dead-letters") as response:
                return len((await response.json())["dead_letters"]) == DEAD

        assert await wait_until(all_dead, timeout=30), gateway.log_tail()


def test_every_worker_is_counted_once(scenario: tuple[GatewayProcess, NswThread]) -> None:
    """Whichever worker answers, totals are the scenario's; a killed worker's counts stay, once."""
    gateway, _ = scenario
    assert len(gateway.children()) == 2, gateway.log_tail()
    for _ in range(6):  # SO_REUSEPORT spreads the scrapes over both workers
        text = scrape(gateway)
        assert total(text, "asw_messages_accepted_total", channel="http") == DELIVERED + DEAD
        assert total(text, "asw_messages_accepted_total", sender="SG", document_type="EFD") == (
            DELIVERED + DEAD
        )
        # each delivered Form D is answered by the gateway's delivery receipt, TH -> SG
        receipts = total(text, "asw_messages_accepted_total", channel="receipt", sender="TH")
        assert receipts == DELIVERED
        refused = total(text, "asw_messages_refused_total", sender="unknown", code="malformed-xml")
        assert refused == REFUSED
        assert total(text, "asw_messages_delivered_total", receiver="TH") == DELIVERED
        assert total(text, "asw_submit_to_delivery_seconds_count", receiver="TH") == DELIVERED
        assert total(text, "asw_ingest_seconds_count", outcome="accepted") == (
            DELIVERED + DEAD + receipts
        )
        assert total(text, "asw_ingest_seconds_count", outcome="refused") >= REFUSED
        assert total(text, "asw_messages_dead_lettered_total", receiver="TH") == DEAD
        assert total(text, "asw_delivery_retries_total", receiver="TH") >= DEAD
        assert total(text, "asw_journal_operation_seconds_count", operation="record_accepted") == (
            DELIVERED + DEAD + receipts
        )
        assert total(text, "asw_partner_breaker_state", partner="TH") == 2
        assert total(text, "asw_queue_messages", kind="dead") == DEAD
        assert total(text, "asw_journal_messages", receiver="TH", state="DEAD") == DEAD
        assert total(text, "asw_oldest_waiting_seconds", receiver="TH") == 0
        assert total(text, "asw_broker_up") == 1
        days = total(text, "asw_certificate_expiry_seconds", country="TH", kind="ca") / 86400
        assert 1 < days < 100 * 366
        assert total(text, "asw_certificate_expiry_seconds", country="TH", kind="crl") > 3600
        assert total(text, "asw_certificate_expiry_seconds", country="SG", kind="signer") > 86400
    _kill_one_worker(gateway)
    for _ in range(6):  # the dead worker's counts stay in the totals, once
        text = scrape(gateway)
        assert total(text, "asw_messages_accepted_total", channel="http") == DELIVERED + DEAD
        assert total(text, "asw_messages_delivered_total", receiver="TH") == DELIVERED
        assert total(text, "asw_messages_refused_total", code="malformed-xml") == REFUSED


def _kill_one_worker(gateway: GatewayProcess) -> None:
    """SIGKILL one worker and wait until the supervisor has replaced it."""
    before = gateway.children()
    os.kill(before[0], signal.SIGKILL)

    async def replaced() -> bool:
        now = gateway.children()
        return len(now) == 2 and before[0] not in now and gateway.ready()

    assert asyncio.run(wait_until(replaced, timeout=30)), gateway.log_tail()


def test_promtool_accepts_the_exposition(scenario: tuple[GatewayProcess, NswThread]) -> None:
    """``promtool check metrics`` finds no problem in the gateway's /metrics output."""
    gateway, _ = scenario
    result = subprocess.run(
        [_tool("promtool"), "check", "metrics"],
        input=scrape(gateway).encode(),
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert not (result.stdout + result.stderr).strip(), (result.stdout + result.stderr).decode()


def test_prometheus_scrapes_and_evaluates_the_rules(
    scenario: tuple[GatewayProcess, NswThread], tmp_path: Path
) -> None:
    """A real Prometheus scrapes the gateway; its query API gives back the scenario's numbers."""
    gateway, _ = scenario
    prometheus = Prometheus(tmp_path, gateway.port)
    try:
        value = prometheus.wait_value('up{job="asw-gateway"}', 1.0)
        assert value == 1.0, prometheus.log_tail()
        expected = {
            'sum(asw_messages_accepted_total{channel="http"})': DELIVERED + DEAD,
            'sum(asw_messages_delivered_total{receiver="TH"})': DELIVERED,
            'sum(asw_messages_dead_lettered_total{receiver="TH"})': DEAD,
            'sum(asw_messages_refused_total{code="malformed-xml"})': REFUSED,
            'sum(asw_queue_messages{kind="dead"})': DEAD,
            'sum(asw_submit_to_delivery_seconds_count{receiver="TH"})': DELIVERED,
        }
        for expr, number in expected.items():
            assert prometheus.wait_value(expr, float(number)) == number, expr
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) >= 10
        assert {rule["health"] for rule in rules} == {"ok"}, rules
    finally:
        prometheus.stop()
