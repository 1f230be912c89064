"""Start-up mistakes: each gives one clear message and a non-zero exit within seconds.

Every test runs the real ``asw-gateway serve`` (``python -m gateway serve``) with a real
configuration, one thing in it wrong, and reads what it prints.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asw_toolkit.processes import XSD_DIR, GatewayProcess, free_port
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.workers import START_FAILURES
from tests.conftest import delete_topology
from tests.pki_fixtures import PkiBundle

pytestmark = [pytest.mark.rabbitmq]

Factory = Callable[..., GatewayProcess]
OLD_JOURNAL = Path(__file__).resolve().parents[1] / "journal" / "data" / "journal-v1.db"
SECONDS = 20.0
"""A refused start ends well within this (it usually takes one to three seconds)."""


def _refused(gateway: GatewayProcess, **environ: str) -> tuple[str, float]:
    """Run ``serve`` once; return what it printed on stderr and how long it took."""
    if not gateway.config_path.exists():
        gateway.write_config()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(gateway.config_path)],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert took < SECONDS, took
    assert done.stderr.count("asw-gateway: cannot start") == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr, took


@pytest.fixture(name="make_gateway")
def _make_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Iterator[Factory]:
    made: list[GatewayProcess] = []

    def make(**options: Any) -> GatewayProcess:
        workdir = tmp_path / f"gateway-{len(made)}"
        workdir.mkdir()
        given: dict[str, Any] = {"amqp_url": amqp_url, "pki_dir": rsa_pki.directory, **options}
        gateway = GatewayProcess(workdir=workdir, **given)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.stop()
        asyncio.run(
            delete_topology(
                amqp_url, Topology(gateway.prefix), MEMBER_STATES, gateway.retry_delays_ms
            )
        )


def test_port_in_use_names_the_port_and_the_process(make_gateway: Factory) -> None:
    """A port another program listens on stops start-up naming the port and that program."""
    gateway = make_gateway()
    with socket.socket() as other:
        other.bind(("127.0.0.1", gateway.port))
        other.listen()
        message, _ = _refused(gateway)
    assert f"127.0.0.1:{gateway.port} is already in use by" in message
    assert f"(pid {os.getpid()})" in message


def test_wrong_broker_password_is_named(make_gateway: Factory, amqp_url: str) -> None:
    """Credentials RabbitMQ refuses are named as such, not as a timeout."""
    gateway = make_gateway()
    wrong = amqp_url.replace("guest:guest@", "guest:not-the-password@")
    message, _ = _refused(gateway, ASW_AMQP__URL=wrong)
    assert "amqp.url: RabbitMQ at" in message
    assert "refused user 'guest': wrong user name or password" in message


def test_nothing_at_the_broker_address(make_gateway: Factory) -> None:
    """A broker URL where nothing listens says so, with the address."""
    gateway = make_gateway()
    port = free_port()
    message, _ = _refused(gateway, ASW_AMQP__URL=f"amqp://guest:guest@127.0.0.1:{port}/")
    assert f"amqp.url: nothing answers as RabbitMQ at 127.0.0.1:{port}" in message


def test_missing_virtual_host(make_gateway: Factory, amqp_url: str) -> None:
    """A virtual host that does not exist is named."""
    gateway = make_gateway()
    message, _ = _refused(gateway, ASW_AMQP__URL=amqp_url.rstrip("/") + "/no-such-vhost")
    assert "virtual host 'no-such-vhost'" in message
    assert "does not exist" in message


def test_journal_folder_missing(make_gateway: Factory, tmp_path: Path) -> None:
    """A SQLite journal in a folder that does not exist is named; no crash loop."""
    gateway = make_gateway(journal_url=f"sqlite://{tmp_path}/missing/journal.db")
    message, _ = _refused(gateway)
    assert f"journal.url: The SQLite journal's folder {tmp_path}/missing does not exist" in message


def test_unknown_journal_scheme(make_gateway: Factory) -> None:
    """A journal URL of no known kind is named."""
    gateway = make_gateway(journal_url="mysql://127.0.0.1/journal")
    message, _ = _refused(gateway)
    assert "journal.url: mysql://127.0.0.1/journal: unknown journal URL scheme 'mysql'" in message


@pytest.mark.postgresql
def test_missing_postgresql_role(make_gateway: Factory) -> None:
    """A PostgreSQL role that does not exist is reported in the server's words."""
    url = "postgresql://no_such_role_asw@127.0.0.1:5432/postgres"
    gateway = make_gateway(journal_url=url)
    message, _ = _refused(gateway)
    assert f"journal.url: The PostgreSQL journal {url} cannot be reached" in message
    assert 'role "no_such_role_asw" does not exist' in message


def test_missing_trust_and_keys_all_in_one_message(make_gateway: Factory, tmp_path: Path) -> None:
    """Several mistakes at once (no PKI, wrong broker port) come in one message together."""
    gateway = make_gateway(pki_dir=tmp_path / "no-pki")
    port = free_port()
    message, _ = _refused(gateway, ASW_AMQP__URL=f"amqp://guest:guest@127.0.0.1:{port}/")
    assert "signer key of SG: cannot read" in message
    assert f"pki.trust_dir: {tmp_path / 'no-pki'} does not exist" in message
    assert "amqp.url: nothing answers" in message
    assert message.count("\n  - ") >= 3


def test_unwritable_drop_folder(make_gateway: Factory, tmp_path: Path) -> None:
    """A drop folder that cannot be created (a file is in the way) is named."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    body = f'adapter = "drop-folder"\noptions = {{ directory = "{blocker}/inbox" }}\n'
    gateway = make_gateway(parties_config={"TH": body})
    message, _ = _refused(gateway)
    assert f"parties.TH.options.directory: the folder {blocker}/inbox is not writable" in message


@pytest.mark.slow
def test_second_gateway_on_the_same_port_or_queues_is_refused(make_gateway: Factory) -> None:
    """A running gateway's port, or its queues with another journal, refuse a second one."""
    first = make_gateway(workers=2)
    first.start()
    same_port = make_gateway(port=first.port)
    message, _ = _refused(same_port)
    assert f"127.0.0.1:{first.port} is already in use by" in message
    same_queues = make_gateway(prefix=first.prefix)
    message, _ = _refused(same_queues)
    assert f"amqp.prefix: the queues under {first.prefix!r}" in message
    assert "belong to journal" in message
    assert "not to this gateway's journal" in message
    assert first.ready()  # the first gateway goes on, untouched


@pytest.mark.slow
def test_workers_that_never_get_ready_are_not_restarted_for_ever(
    make_gateway: Factory, tmp_path: Path
) -> None:
    """A fault only the workers meet (a broken schema file) ends start-up after three tries
    each, exit 1 with a message, instead of a restart a second for ever."""
    xsd = tmp_path / "xsd"
    shutil.copytree(XSD_DIR, xsd)
    (xsd / "formd" / "formd-1.xsd").write_text("<broken")
    gateway = make_gateway(workers=2)
    gateway.write_config()
    config = gateway.config_path.read_text().replace(f'xsd_dir = "{XSD_DIR}"', f'xsd_dir = "{xsd}"')
    gateway.config_path.write_text(config)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(gateway.config_path)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "failed 3 times in a row before it was ready" in done.stderr
    starts = (done.stdout + done.stderr).count('"event": "worker_started"')
    assert START_FAILURES <= starts <= 2 * START_FAILURES, starts
    assert time.monotonic() - started < 120


def test_journal_of_an_older_schema_names_the_migration(
    make_gateway: Factory, tmp_path: Path
) -> None:
    """A journal at an older schema version is refused with the command that migrates it."""
    journal = tmp_path / "old-journal.db"
    shutil.copyfile(OLD_JOURNAL, journal)
    gateway = make_gateway(journal_url=f"sqlite://{journal}")
    message, _ = _refused(gateway)
    assert f"journal.url: The journal sqlite://{journal}:" in message
    assert "asw-gateway journal migrate" in message
