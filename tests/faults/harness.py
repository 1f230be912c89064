"""Helpers for the fault-injection scenarios: a simulated NSW, a load generator, counters.

The simulated NSW (``NswThread``) runs the real ``asw_toolkit.simulator.NswSimulator`` handlers in
a thread with its own event loop, so that whatever blocks the test's loop (starting a gateway,
``rabbitmqctl``) never delays the NSW's answers: a delayed answer would turn into an adapter
timeout, and so into a duplicate that the gateway is not to blame for. The NSW counts what it
receives, duplicates included; every scenario counts deliveries there (``GET /received``), at
the outside party, never in the gateway.

``NswThread`` can also *hold* chosen message ids: such a request is recorded with the client's
TCP port (so the test can find the worker process that sent it) and answered only after
``hold_seconds``, while every other document goes to the simulator as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aiohttp import web

from asw_toolkit.simulator import MAX_DOCUMENT_BYTES, Behaviour, NswSimulator, SimulatorConfig
from tests.conftest import SAMPLE_FORMD, broker_reachable, with_message_id

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
CRASH_LEASE_SECONDS = 3.0
"""Claim lease of the crash scenarios: a dead worker's claims run out within the test."""
CRASH_RETRY_SCHEDULE = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 5.0, 5.0, 5.0)
"""Retry steps of the crash scenarios: enough of them to outlast a lease after a restart."""


# --- the simulated NSW ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """A held request: which message, from which client port, when (monotonic)."""

    message_id: str
    client_port: int
    at: float


class NswThread:
    """A simulated NSW on 127.0.0.1 (any free port), served from its own thread and loop."""

    def __init__(
        self,
        country: str = "TH",
        *,
        behaviour: Behaviour | None = None,
        hold_seconds: float = 3600.0,
        held_ids: Iterable[str] = (),
        held_for_seconds: float = 30.0,
    ) -> None:
        self.simulator = NswSimulator(
            SimulatorConfig(
                country=country, behaviour=behaviour or Behaviour(), hold_seconds=hold_seconds
            )
        )
        self.held_ids = {i.lower() for i in held_ids}
        self.held_for_seconds = held_for_seconds
        self.arrivals: queue.Queue[Arrival] = queue.Queue()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: OSError | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def documents_url(self) -> str:
        """Where the ``http-push`` adapter POSTs documents."""
        return f"{self.url}/documents"

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="nsw-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise AssertionError(f"the NSW simulator did not start: {self._failure!r}")

    def stop(self) -> None:
        """Stop serving (held requests are cancelled) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        self._loop = self._thread = None

    def __enter__(self) -> NswThread:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        simulator = self.simulator
        app = web.Application(client_max_size=MAX_DOCUMENT_BYTES)
        app.router.add_post("/documents", self._documents)
        app.router.add_get("/documents/{message_id}", simulator.handle_document_get)
        app.router.add_get("/received", simulator.handle_received)
        app.router.add_get("/stats", simulator.handle_stats)
        app.router.add_post("/behaviour", simulator.handle_behaviour)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _cleanup(self) -> None:
        await self.simulator.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _documents(self, request: web.Request) -> web.StreamResponse:
        message_id = (request.headers.get("X-ASW-Message-ID") or "").strip().lower()
        if message_id not in self.held_ids:
            return await self.simulator.handle_document(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = int(peer[1]) if peer else 0
        self.arrivals.put(Arrival(message_id, port, time.monotonic()))
        await request.read()
        await asyncio.sleep(self.held_for_seconds)
        return web.json_response({"status": "unavailable", "reason": "held"}, status=503)


async def received(nsw_url: str) -> Counter[str]:
    """Accepted arrivals per message id at the NSW, duplicates included (``GET /received``)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(nsw_url + "/received") as response,
    ):
        body = await response.json()
    return Counter({str(k): int(v) for k, v in body["counts"].items()})


async def nsw_stats(nsw_url: str) -> dict[str, Any]:
    """The NSW's request and answer counters (``GET /stats``)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(nsw_url + "/stats") as response,
    ):
        body: dict[str, Any] = await response.json()
    return body


async def set_behaviour(nsw_url: str, behaviour: str, **values: float) -> None:
    """Switch the NSW's behaviour (``POST /behaviour``), e.g. ``fail_count=20`` or ``delay=2``."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(nsw_url + "/behaviour", json={"behaviour": behaviour, **values}) as answer,
    ):
        assert answer.status == 200, await answer.text()


# --- the sender -------------------------------------------------------------------------------


def documents(count: int) -> dict[str, bytes]:
    """``count`` distinct unsigned SG -> TH Form Ds (the gateway signs for SG), by message id."""
    sample = SAMPLE_FORMD.read_bytes()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    return {i: with_message_id(sample, i) for i in ids}


@dataclass
class Load:
    """What a sender saw: every message id it sent, which got 202, every retryable refusal."""

    sent: list[str] = field(default_factory=list)
    accepted: dict[str, float] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    refusal_codes: Counter[str] = field(default_factory=Counter)
    refused_for_good: dict[str, str] = field(default_factory=dict)

    @property
    def not_accepted(self) -> list[str]:
        """Message ids that never got 202."""
        return [i for i in self.sent if i not in self.accepted]


def problem_code(text: str) -> str:
    """The ``code`` of a problem+json answer, or ``?`` when it has none."""
    try:
        body = json.loads(text)
    except ValueError:
        return "?"
    return str(body.get("code", "?")) if isinstance(body, dict) else "?"


async def send_until_accepted(
    gateway_url: str,
    docs: Mapping[str, bytes],
    *,
    load: Load | None = None,
    concurrency: int = 32,
    deadline: float,
    pause: float = 0.2,
) -> Load:
    """Submit every document concurrently, resending under the SAME message id until 202.

    A 503 (broker down), another retryable status or a broken connection (gateway killed) is
    resent after ``pause`` seconds, as a well-behaved NSW would; ``deadline`` is a
    ``time.monotonic()`` instant after which the sender gives up. Any other answer is final.
    """
    load = load if load is not None else Load()
    pending: asyncio.Queue[str] = asyncio.Queue()
    for message_id in docs:
        load.sent.append(message_id)
        pending.put_nowait(message_id)
    timeout = aiohttp.ClientTimeout(total=15)

    async def one(session: aiohttp.ClientSession, message_id: str) -> None:
        while time.monotonic() < deadline:
            try:
                async with session.post(
                    gateway_url + "/v1/messages",
                    data=docs[message_id],
                    headers={"Content-Type": "application/xml"},
                ) as response:
                    status = response.status
                    text = await response.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                load.refusals[type(exc).__name__] += 1
                await asyncio.sleep(pause)
                continue
            if status == 202:
                load.accepted[message_id] = time.monotonic()
                return
            if status not in RETRYABLE_STATUSES:
                load.refused_for_good[message_id] = f"{status} {text[:300]}"
                return
            load.refusals[str(status)] += 1
            load.refusal_codes[problem_code(text)] += 1
            await asyncio.sleep(pause)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                message_id = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(session, message_id)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return load


# --- waiting and counting ---------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, every: float = 0.25
) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; say whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


async def wait_arrivals(nsw: NswThread, count: int, *, timeout: float, every: float) -> bool:
    """Wait until ``count`` distinct messages have reached the NSW; say whether they did."""

    async def enough() -> bool:
        return len(set(nsw.simulator.received)) >= count

    return await wait_until(enough, timeout=timeout, every=every)


async def settle(
    nsw_url: str, gateway_url: str, accepted: Iterable[str], *, timeout: float
) -> tuple[set[str], Counter[str]]:
    """After a crash scenario: the accepted ids that never arrived, and every arrival counted.

    Waits for every accepted message at the NSW, for the gateway's queues to empty, and then
    for copies whose claims were still leased to run their course.
    """
    missing = await wait_delivered(nsw_url, accepted, timeout=timeout)
    await wait_until(lambda: queues_empty(gateway_url), timeout=20)
    await asyncio.sleep(CRASH_LEASE_SECONDS + 2)
    return missing, await received(nsw_url)


async def wait_delivered(nsw_url: str, ids: Iterable[str], *, timeout: float) -> set[str]:
    """Wait until every id in ``ids`` reached the NSW; return those that did not in time."""
    wanted = set(ids)
    missing = set(wanted)

    async def done() -> bool:
        nonlocal missing
        missing = wanted - set(await received(nsw_url))
        return not missing

    await wait_until(done, timeout=timeout, every=0.5)
    return missing


async def gateway_json(gateway_url: str, path: str) -> Any:
    """GET a JSON resource of the gateway's API."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(gateway_url + path) as response,
    ):
        return await response.json(content_type=None)


async def queues_empty(gateway_url: str) -> bool:
    """True when no delivery or retry queue holds a ready message (``GET /v1/queues``)."""
    try:
        body = await gateway_json(gateway_url, "/v1/queues")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    depths = body.get("queues") if isinstance(body, dict) else None
    if not isinstance(depths, dict):
        return False
    return all(n == 0 for name, n in depths.items() if not str(name).endswith(".dead"))


async def journal_views(gateway_url: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``GET /v1/messages/{id}`` for each id (state, attempts, last error, timeline)."""
    views: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for message_id in ids:
            async with session.get(f"{gateway_url}/v1/messages/{message_id}") as response:
                views[message_id] = await response.json(content_type=None)
    return views


async def drain_dead_letters(amqp_url: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Take every message out of ``<prefix>.dead``; their headers by message id."""
    parked: dict[str, dict[str, Any]] = {}
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(f"{prefix}.dead")
        while True:
            message = await dead.get(no_ack=True, fail=False)
            if message is None:
                return parked
            parked[message.message_id or ""] = dict(message.headers or {})


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """The one line a scenario prints, counted at the NSW."""

    scenario: str
    sent: int
    accepted: int
    delivered: int
    duplicates: int
    lost: int
    extra: Mapping[str, object] = field(default_factory=dict)
    refused_by_code: str | None = None
    """``code:count,...`` of the refusals, printed after ``accepted`` when given."""

    @classmethod
    def count(
        cls,
        scenario: str,
        load: Load,
        arrivals: Counter[str],
        *,
        parked: Iterable[str] = (),
        extra: Mapping[str, object] | None = None,
        refused_by_code: str | None = None,
    ) -> Summary:
        """Delivered = accepted ids that reached the NSW; duplicates = arrivals beyond the
        first of each id; lost = accepted ids neither delivered nor in the dead letters."""
        accepted = set(load.accepted)
        delivered = accepted & set(arrivals)
        parked_ids = accepted & set(parked)
        return cls(
            scenario=scenario,
            sent=len(load.sent),
            accepted=len(accepted),
            delivered=len(delivered),
            duplicates=sum(n - 1 for n in arrivals.values() if n > 1),
            lost=len(accepted - delivered - parked_ids),
            extra=extra or {},
            refused_by_code=refused_by_code,
        )

    def line(self) -> str:
        """``scenario=<name> sent=N accepted=N delivered=N duplicates=N lost=N [extra...]``."""
        extra = "".join(f" {k}={v}" for k, v in self.extra.items())
        refused = "" if self.refused_by_code is None else f"refused_by_code={self.refused_by_code} "
        return (
            f"scenario={self.scenario} sent={self.sent} accepted={self.accepted} {refused}"
            f"delivered={self.delivered} duplicates={self.duplicates} lost={self.lost}{extra}"
        )


# --- processes and the broker -----------------------------------------------------------------


def socket_owner(local_port: int, remote_port: int, pids: Iterable[int]) -> int | None:
    """The pid (among ``pids``) owning the TCP socket 127.0.0.1:local_port -> :remote_port."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port
                ):
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None


def wait_broker(timeout: float = 90.0, port: int | None = None) -> bool:
    """Wait until a broker answers the AMQP handshake on 127.0.0.1 (``port``, or the shared)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker_reachable() if port is None else broker_reachable(port=port):
            return True
        time.sleep(0.5)
    return False
