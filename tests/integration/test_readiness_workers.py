"""/readyz is the supervisor's one verdict: the same from every worker, with the real reasons.

A two-worker gateway reaches RabbitMQ through a TCP relay of the test's own, so that the broker
can really go away (the relay stops, every connection through it closes) without touching the
shared broker; the trust store and the journal are broken for real in the gateway's own files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asw_toolkit.processes import GatewayProcess, free_port
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import AMQP_HOST, AMQP_PORT, delete_topology
from tests.pki_fixtures import PkiBundle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

Answer = tuple[int, dict[str, Any]]


class Relay:
    """A TCP relay on 127.0.0.1:``port`` to the shared broker, in a thread of its own."""

    def __init__(self) -> None:
        """Pick a port; ``start`` opens it."""
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(AMQP_HOST, AMQP_PORT)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def start(self) -> None:
        """Listen and relay."""

        async def listen() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)

    def stop(self) -> None:
        """Stop listening and cut every relayed connection."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:
                writer.transport.abort()
            self._writers.clear()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def close(self) -> None:
        """Stop, and end the thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def _readyz(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _settle(url: str, want: Any, timeout: float = 20.0) -> Answer:
    """Poll /readyz until ``want(answer)``; return that answer (or fail with the last one)."""
    deadline = time.monotonic() + timeout
    answer = _readyz(url)
    while not want(answer) and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = _readyz(url)
    assert want(answer), answer
    return answer


def _same_fifty(url: str) -> Answer:
    """Fifty /readyz calls in a row, each a new connection: one answer, whoever took it."""
    answers = [_readyz(url) for _ in range(50)]
    first = answers[0]
    assert all(answer == first for answer in answers), {json.dumps(a) for a in answers}
    return first


def _reasons(answer: Answer) -> str:
    return " | ".join(answer[1].get("reasons", []))


@pytest.fixture(name="relay")
def _relay() -> Iterator[Relay]:
    relay = Relay()
    relay.start()
    yield relay
    relay.close()


@pytest.fixture(name="gateway")
def _gateway(
    tmp_path: Path,
    relay: Relay,
    rsa_pki: PkiBundle,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[GatewayProcess]:
    pki = tmp_path / "pki"
    shutil.copytree(rsa_pki.directory, pki)
    monkeypatch.setenv("ASW_PKI__TRUST_CHECK_SECONDS", "0.5")
    gateway = GatewayProcess(
        workdir=tmp_path,
        amqp_url=f"amqp://guest:guest@127.0.0.1:{relay.port}/",
        pki_dir=pki,
        workers=2,
    )
    gateway.start(timeout=60)
    yield gateway
    gateway.stop()
    asyncio.run(
        delete_topology(amqp_url, Topology(gateway.prefix), MEMBER_STATES, gateway.retry_delays_ms)
    )


def test_every_worker_gives_the_same_answer_and_the_real_reason(
    gateway: GatewayProcess, relay: Relay, tmp_path: Path
) -> None:
    """Ready, broker gone, broker back, a trust reload failing and mended, journal deleted:
    each state gives fifty identical answers from the two workers, naming its cause."""
    url = gateway.url
    status, body = _same_fifty(url)
    assert (status, body["ready"], body["workers"]) == (200, True, {"ready": 2, "running": 2})
    assert body["reasons"] == []

    relay.stop()  # the broker goes away: every connection through the relay is cut
    # Each worker notices on its own: settle once both have.
    _settle(url, lambda a: "broker: disconnected [workers 0, 1]" in _reasons(a), timeout=60)
    status, body = _same_fifty(url)
    assert status == 503
    assert body["broker"] == "disconnected"
    assert "broker: disconnected [workers 0, 1]" in body["reasons"]
    relay.start()
    _settle(url, lambda a: a[0] == 200)
    assert _same_fifty(url)[0] == 200

    ca = tmp_path / "pki" / "TH" / "ca.pem"
    good = ca.read_bytes()
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    # A failed reload is named but keeps the previous trust: still ready (web.readiness).
    _settle(url, lambda a: a[1].get("trust") == "reload-failed")
    status, body = _same_fifty(url)
    assert (status, body["trust"]) == (200, "reload-failed")
    assert "TH" in body["trust_reason"]
    ca.write_bytes(good)
    _settle(url, lambda a: a[1].get("trust") == "ok")

    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    # Settled once every worker has seen it (under load the second one reports a moment later).
    _settle(
        url,
        lambda a: (
            a[0] == 503 and "journal: replaced" in _reasons(a) and a[1]["workers"]["ready"] == 0
        ),
    )
    status, body = _same_fifty(url)
    assert (status, body["journal"]) == (503, "replaced")
