"""Shared fixtures: the real RabbitMQ, a running gateway on an ephemeral port, samples."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import types
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from asw_toolkit.processes import GatewayProcess, delete_topology
from asw_toolkit.testkit import SAMPLE_DOCUMENT_ID, SAMPLE_MESSAGE_ID, with_message_id
from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import (
    AmqpSettings,
    DocumentSettings,
    HttpSettings,
    JournalSettings,
    PartySettings,
    PkiSettings,
    Settings,
)

# The sample-copy helper and the broker clean-up live in the toolkit (bench/ uses them too);
# the tests keep importing them from here.
__all__ = ["SAMPLE_DOCUMENT_ID", "SAMPLE_MESSAGE_ID", "delete_topology", "with_message_id"]

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"
SAMPLE_FORMD = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"
# A small parties plan (tests/core): EFD among SG, TH and KH; ACDD only KH-SG; EFD SG-TL in 2027.
PILOT_PARTIES = """
version = "test-1"
[[member]]
country = "SG"
name = "Singapore"
member_since = 1967-08-08
[[member]]
country = "TH"
name = "Thailand"
member_since = 1967-08-08
[[member]]
country = "KH"
name = "Cambodia"
member_since = 1999-04-30
[[member]]
country = "TL"
name = "Timor-Leste"
member_since = 2025-10-26

[[exchange]]
document = "EFD"
versions = ["1"]
since = 2018-01-01
members = ["SG", "TH", "KH"]

[[exchange]]
document = "ACDD"
versions = ["1"]
since = 2020-12-31
pairs = [["KH", "SG"]]

[[exchange]]
document = "EFD"
versions = ["1"]
since = 2027-01-01
until = 2027-12-31
pairs = [["SG", "TL"]]
"""
AMQP_URL = os.environ.get("ASW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AMQP_HOST = urlsplit(AMQP_URL).hostname or "127.0.0.1"
AMQP_PORT = urlsplit(AMQP_URL).port or 5672


# What a test needs, read from its fixtures and from the code it runs, so that no test file has to
# say it. A fixture (or a fixture depending on it) that reaches a service:
SERVICE_FIXTURES = {"amqp_url": "rabbitmq", "chromium_path": "browser"}
# A parametrized fixture whose parameter picks the service:
SERVICE_PARAMS = {
    ("journal_url", "postgres"): "postgresql",
    ("retention_gateway", "postgres"): "postgresql",
}
# Names that reach a service when a test, or a helper function it calls, uses them:
SERVICE_NAMES = {
    "AMQP_URL": "rabbitmq",
    "broker_reachable": "rabbitmq",
    "POSTGRES_URL": "postgresql",
    "fresh_postgres_journal": "postgresql",
}
# Debian's command-line checkers: named as a string (``"xmllint"``) or by a global of the same
# name (``XMLSEC1 = shutil.which("xmlsec1")``) in the test or a helper it calls.
TOOLS = ("xmllint", "xmlsec1", "openssl")
SERVICE_MARKERS = ("rabbitmq", "postgresql", "browser", *TOOLS)
CPU_HEAVY = pytest.mark.xdist_group("cpu")
"""Tests that keep both cores busy (a browser, a fuzzer, a RabbitMQ cluster booting, 1,000
messages through a gateway): ``make test`` (``--dist loadgroup``) runs them one after another
on one worker, so that they never compete with each other; the other worker takes the rest."""


def services_in_code(function: Callable[..., Any]) -> set[str]:
    """The services a test function reaches through the names and strings in its code,
    following the functions of the ``tests`` package it calls (by name)."""
    found: set[str] = set()
    seen: set[types.CodeType] = set()
    pending: list[tuple[types.CodeType, dict[str, Any]]] = []
    code = getattr(function, "__code__", None)
    if isinstance(code, types.CodeType):
        pending.append((code, getattr(function, "__globals__", {})))
    while pending:
        code, scope = pending.pop()
        if code in seen:
            continue
        seen.add(code)
        constants = list(code.co_consts)
        while constants:
            constant = constants.pop()
            if isinstance(constant, tuple | frozenset):
                constants.extend(constant)
            elif isinstance(constant, types.CodeType):
                pending.append((constant, scope))
            elif isinstance(constant, str) and Path(constant).name in TOOLS:
                found.add(Path(constant).name)
        for name in code.co_names:
            if name in SERVICE_NAMES:
                found.add(SERVICE_NAMES[name])
            elif name.lower() in TOOLS:
                found.add(name.lower())
            value = scope.get(name)
            inner = getattr(value, "__code__", None)
            if isinstance(inner, types.CodeType) and str(
                getattr(value, "__module__", "")
            ).startswith("tests."):
                pending.append((inner, getattr(value, "__globals__", scope)))
    return found


def services_needed(item: pytest.Item) -> set[str]:
    """The services one collected test needs, from its fixtures, parameters and code."""
    needed = {s for f, s in SERVICE_FIXTURES.items() if f in getattr(item, "fixturenames", ())}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for (fixture, param), service in SERVICE_PARAMS.items():
            if callspec.params.get(fixture) == param:
                needed.add(service)
    function = getattr(item, "function", None)
    if function is not None:
        needed |= services_in_code(function)
    return needed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the services it needs (``rabbitmq``, ``postgresql``, ``browser``,
    ``xmllint``, ``xmlsec1``, ``openssl``), read from its fixtures and the code it runs, so
    that ``make unit`` can leave out what needs a broker, a database or a browser."""
    for item in items:
        for service in sorted(services_needed(item)):
            item.add_marker(service)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Under pytest-xdist the long tests go first, so that no worker is left with one of them
        # at the end while the other idles (every worker sorts alike: the collections agree).
        items.sort(
            key=lambda item: (
                not any(item.iter_markers("slow"))
                and item.get_closest_marker("xdist_group") is None
            )
        )


SUMMARY_LINE = "summary-line"
"""The ``user_properties`` name under which a scenario keeps its one-line summary."""


def show_summary(item: pytest.Item, capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print a scenario's summary line past pytest's capture (it shows with ``-q``) and keep it
    for the end of the run: a pytest-xdist worker's own output is never shown, but the
    ``user_properties`` of its reports reach the terminal summary below."""
    item.user_properties.append((SUMMARY_LINE, line))
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        with capsys.disabled():
            print(f"\n{line}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every scenario summary line of the run (passed or failed), by test id."""
    lines = sorted(
        (report.nodeid, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == SUMMARY_LINE
    )
    if lines:
        terminalreporter.section("scenario summaries")
        for _, line in lines:
            terminalreporter.write_line(str(line))


def broker_reachable(host: str = AMQP_HOST, port: int = AMQP_PORT) -> bool:
    """True when an AMQP 0-9-1 broker answers the protocol header on ``host:port``
    (by default the broker of ``ASW_TEST_AMQP_URL``)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            sock.settimeout(5)
            frame = sock.recv(7)
    except OSError:
        return False
    # A broker answers with a method frame (type 1) carrying Connection.Start.
    return frame[:1] == b"\x01"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The URL of the real RabbitMQ; integration tests fail (never skip) without it."""
    if not broker_reachable():
        pytest.fail(
            f"RabbitMQ is not reachable on {AMQP_HOST}:{AMQP_PORT}. Start it with "
            "`rabbitmq-server -detached` (or run `make test`, which starts it)."
        )
    return AMQP_URL


@pytest.fixture(name="sample_formd")
def _sample_formd() -> bytes:
    """The canonical SG -> TH Form D sample."""
    return SAMPLE_FORMD.read_bytes()


def make_settings(
    tmp_path: Path,
    amqp_url: str,
    prefix: str,
    pki_dir: Path,
    *,
    sign_on_behalf: frozenset[str] = frozenset(MEMBER_STATES),
) -> Settings:
    """Settings for a gateway serving all ten member states through tmp drop folders.

    The gateway signs for the parties in ``sign_on_behalf`` (all by default), so that tests can
    submit unsigned samples; the others must sign their documents themselves.
    """
    return Settings(
        # Tests run on loopback without keys; the auth tests configure keys themselves.
        http=HttpSettings(host="127.0.0.1", port=0, max_body_bytes=2 * 1024 * 1024, auth="none"),
        amqp=AmqpSettings(
            url=amqp_url, prefix=prefix, reconnect_seconds=0.5, retry_schedule_seconds=(0.3, 0.6)
        ),
        documents=DocumentSettings(xsd_dir=str(XSD_DIR)),
        journal=JournalSettings(url=f"sqlite://{tmp_path / 'journal.db'}", lease_seconds=5),
        pki=PkiSettings(trust_dir=str(pki_dir), keys_dir=str(pki_dir)),
        parties={
            cc: PartySettings(
                country=cc,
                adapter="drop-folder",
                options={
                    "directory": str(tmp_path / "nsw" / cc / "inbox"),
                    "outbox": str(tmp_path / "nsw" / cc / "outbox"),
                    "poll_seconds": "0.1",
                },
                sign_on_behalf=cc in sign_on_behalf,
            )
            for cc in MEMBER_STATES
        },
    )


@pytest.fixture
async def running_gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A real gateway (HTTP + RabbitMQ + drop folders) on an ephemeral port."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
    gateway = Gateway(settings)
    await gateway.start(port=0)
    assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    try:
        yield gateway
    finally:
        await gateway.stop()
        await delete_topology(
            amqp_url, Topology(prefix), MEMBER_STATES, gateway.broker.retry_delays_ms
        )


@contextlib.contextmanager
def started(gateway: GatewayProcess) -> Iterator[GatewayProcess]:
    """``gateway`` (a process) started; stopped and its broker topology deleted afterwards."""
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        asyncio.run(
            delete_topology(
                gateway.amqp_url, Topology(gateway.prefix), MEMBER_STATES, gateway.retry_delays_ms
            )
        )
