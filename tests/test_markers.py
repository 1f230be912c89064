"""Tests carry the markers of the services they need, so that `make unit` runs without them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT, SERVICE_MARKERS, services_in_code
from tests.journal.conftest import POSTGRES_URL

Row = dict[str, Any]

# A plugin for a child pytest: it writes every collected test's fixtures, parameters and markers.
DUMP_PLUGIN = """
import json, os

def pytest_collection_finish(session):
    rows = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        rows.append({
            "id": item.nodeid,
            "fixtures": list(getattr(item, "fixturenames", ())),
            "params": {k: str(v) for k, v in callspec.params.items()} if callspec else {},
            "markers": sorted({mark.name for mark in item.iter_markers()}),
        })
    with open(os.environ["ASW_MARKER_DUMP"], "w") as out:
        json.dump(rows, out)
"""
CHILD_OPTIONS = ("-p", "asw_marker_dump", "-p", "no:randomly", "-p", "no:cacheprovider")
SERVICES = {"rabbitmq", "postgresql", "browser"}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """Every test of the suite as a child pytest collects it, with its markers."""
    folder = tmp_path_factory.mktemp("marker-dump")
    (folder / "asw_marker_dump.py").write_text(DUMP_PLUGIN)
    dump = folder / "collected.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
        "ASW_MARKER_DUMP": str(dump),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *CHILD_OPTIONS, "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows: list[Row] = json.loads(dump.read_text())
    return rows


def _with(rows: list[Row], marker: str) -> set[str]:
    return {row["id"] for row in rows if marker in row["markers"]}


def test_every_test_using_a_service_fixture_carries_its_marker(collected: list[Row]) -> None:
    """amqp_url means rabbitmq, chromium_path browser, the postgres journal postgresql."""
    needs = {
        "rabbitmq": {r["id"] for r in collected if "amqp_url" in r["fixtures"]},
        "browser": {r["id"] for r in collected if "chromium_path" in r["fixtures"]},
        "postgresql": {r["id"] for r in collected if r["params"].get("journal_url") == "postgres"},
    }
    for marker, tests in needs.items():
        assert len(tests) >= 5, f"too few tests use the {marker} fixtures: the dump is wrong"
        assert tests - _with(collected, marker) == set(), f"tests without the {marker} marker"


def test_tests_reaching_a_service_in_their_code_are_marked(collected: list[Row]) -> None:
    """A test reaching PostgreSQL, xmllint, xmlsec1 or openssl through a helper is marked."""
    expected = {
        "tests/faults/test_two_nodes.py::": "postgresql",
        "tests/journal/test_postgres_lending.py::": "postgresql",
        "tests/core/test_xmllint_crosscheck.py::": "xmllint",
        "tests/core/test_code_lists.py::test_schemas_with_the_full_lists_compile_in_xmllint": (
            "xmllint"
        ),
        "tests/interop/test_xmlsec1_openssl.py::test_our_signature_verifies_with_xmlsec1": (
            "xmlsec1"
        ),
        "tests/interop/test_xmlsec1_openssl.py::test_openssl_rejects_bad_certificates": "openssl",
    }
    for prefix, marker in expected.items():
        tests = [r for r in collected if r["id"].startswith(prefix)]
        assert tests, f"no test starts with {prefix}"
        assert all(marker in r["markers"] for r in tests), f"{prefix} lacks {marker}"


def test_tests_needing_no_service_stay_in_make_unit(collected: list[Row]) -> None:
    """The pure core, SQLite journals and a closed-port PostgreSQL check carry no service."""
    unit = {r["id"] for r in collected if not SERVICES & set(r["markers"])}
    core = {r["id"] for r in collected if r["id"].startswith("tests/core/")}
    sqlite = {r["id"] for r in collected if r["params"].get("journal_url") == "sqlite"}
    closed = "tests/journal/test_open_journal.py::test_postgres_unreachable_is_unavailable"
    assert core and sqlite
    assert core | sqlite | {closed} <= unit
    assert len(unit) > len(collected) / 2, "make unit would leave out most of the suite"


def _reaches_postgres_inside() -> str:
    return POSTGRES_URL


def _reaches_postgres_through_a_helper() -> list[str]:
    return [_reaches_postgres_inside() for _ in range(2)]


def _runs_tools() -> list[list[str]]:
    xmllint = "/usr/bin/xmllint"
    return [[xmllint, "--noout"], [*map(str, ("xmlsec1", "--verify"))]]


def _needs_nothing() -> str:
    return os.path.join("samples", "openssl.cnf")


def test_services_are_found_through_helpers_and_nested_code() -> None:
    """Names and tool strings count in helpers of the tests package and nested code."""
    assert services_in_code(_reaches_postgres_through_a_helper) == {"postgresql"}
    assert services_in_code(_runs_tools) == {"xmllint", "xmlsec1"}
    assert services_in_code(_needs_nothing) == set()


def test_make_unit_leaves_out_rabbitmq_postgresql_and_browser() -> None:
    """`make unit` deselects the three service markers, each registered with pytest."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^UNIT := (.+)$", makefile, re.MULTILINE)
    assert match is not None and '$(BIN)/pytest -m "$(UNIT)"' in makefile
    assert set(re.findall(r"not (\w+)", match.group(1))) == SERVICES
    registered = (ROOT / "pyproject.toml").read_text()
    for marker in SERVICE_MARKERS:
        assert f'"{marker}: ' in registered, f"{marker} is not registered in pyproject.toml"
