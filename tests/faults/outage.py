"""Helpers for the journal outage scenarios run under a real gateway (issue 14, points 1-8).

``PacedSender`` submits documents at a steady rate, each resent under the same message id after
a retryable answer until it gets 202, and keeps every answer (when it started and ended, its
status, its error code, whether it carried ``Retry-After``), so that a scenario can say what
was refused during a fault and whether anything was refused after it healed. ``BrokerTap`` is a
queue of the test's own bound to the gateway's route exchange: it counts the copies of each
message that were published to RabbitMQ (first publishes only, not the retry steps' returns).
The PostgreSQL helpers act on a private cluster (``tests.faults.private_postgres``) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aio_pika
import aiohttp
import psycopg

from tests.faults.harness import RETRYABLE_STATUSES, Load
from tests.faults.private_postgres import PrivatePostgres


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer the sender got (monotonic times)."""

    message_id: str
    started: float
    ended: float
    status: int
    code: str
    retry_after: bool


@dataclass(slots=True)
class PacedSender:
    """Submits ``docs`` at ``rate`` new messages a second; resends each until 202."""

    gateway_url: str
    docs: Mapping[str, bytes]
    rate: float
    deadline: float
    concurrency: int = 32
    pause: float = 0.3
    timeout: float = 15.0
    load: Load = field(default_factory=Load)
    answers: list[Answer] = field(default_factory=list)

    async def run(self) -> Load:
        """Send everything (returns when each message is accepted, refused or out of time)."""
        limit = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks = []
            for message_id in self.docs:
                self.load.sent.append(message_id)
                await limit.acquire()
                tasks.append(asyncio.create_task(self._one(session, message_id, limit)))
                await asyncio.sleep(1 / self.rate)
            await asyncio.gather(*tasks)
        return self.load

    async def _one(
        self, session: aiohttp.ClientSession, message_id: str, limit: asyncio.Semaphore
    ) -> None:
        try:
            while time.monotonic() < self.deadline:
                status, code = await self._post(session, message_id)
                if status == 202:
                    self.load.accepted[message_id] = time.monotonic()
                    return
                if status not in RETRYABLE_STATUSES and status != 0:
                    self.load.refused_for_good[message_id] = f"{status} {code}"
                    return
                self.load.refusals[code] += 1
                await asyncio.sleep(self.pause)
        finally:
            limit.release()

    async def _post(self, session: aiohttp.ClientSession, message_id: str) -> tuple[int, str]:
        started = time.monotonic()
        try:
            async with session.post(
                self.gateway_url + "/v1/messages",
                data=self.docs[message_id],
                headers={"Content-Type": "application/xml"},
            ) as response:
                status, text = response.status, await response.text()
                retry_after = "Retry-After" in response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, text, retry_after = 0, type(exc).__name__, False
        code = "accepted" if status == 202 else problem_code(status, text)
        self.answers.append(
            Answer(message_id, started, time.monotonic(), status, code, retry_after)
        )
        return status, code


def problem_code(status: int, text: str) -> str:
    """The ``code`` of a problem+json answer; the status (or the client error) otherwise."""
    if status == 0:
        return text
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return str(body["code"])
    return str(status)


def refused_by_code(answers: Iterable[Answer]) -> str:
    """``code:count,...`` of every refusal, most frequent first ("none" when there was none)."""
    counts = Counter(a.code for a in answers if a.status != 202)
    return ",".join(f"{code}:{n}" for code, n in counts.most_common()) or "none"


def in_window(answers: Iterable[Answer], start: float, end: float) -> list[Answer]:
    """The answers to the attempts started within [start, end)."""
    return [a for a in answers if start <= a.started < end]


class BrokerTap:
    """A queue of the test's own on the gateway's route exchange, counting published copies."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._url = amqp_url
        self._exchange = f"{prefix}.route"
        self.queue_name = f"{prefix}.tap"
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> BrokerTap:
        self._connection = await aio_pika.connect_robust(self._url, timeout=5)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(self.queue_name, durable=False, auto_delete=False)
        await queue.bind(self._exchange, routing_key="#")
        return self

    async def copies(self) -> Counter[str]:
        """Copies per message id published by the gateway itself (not returns from retries)."""
        assert self._connection is not None
        counts: Counter[str] = Counter()
        channel = await self._connection.channel()
        queue = await channel.get_queue(self.queue_name)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            if "x-asw-attempt" not in (message.headers or {}):
                counts[message.message_id or ""] += 1
        await channel.close()
        return counts

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            channel = await self._connection.channel()
            await channel.queue_delete(self.queue_name)
        await self._connection.close()


# --- a private PostgreSQL cluster, broken on purpose --------------------------------------------


def backend_pids(cluster: PrivatePostgres) -> list[int]:
    """The pids of the client backends connected to the cluster (the gateway's), not ours."""
    with psycopg.connect(cluster.url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


def kill_one_backend(cluster: PrivatePostgres) -> int:
    """``kill -9`` one client backend (PostgreSQL then resets every session and recovers)."""
    pids = backend_pids(cluster)
    assert pids, "no gateway backend to kill"
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def terminate_all_backends(cluster: PrivatePostgres) -> int:
    """``pg_terminate_backend`` every client backend but ours; how many there were."""
    with psycopg.connect(cluster.url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def cluster_pids(cluster: PrivatePostgres) -> list[int]:
    """The postmaster of the private cluster and every process it started."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry))
    return [postmaster, *children]


def freeze(pids: Iterable[int], on: bool) -> None:
    """SIGSTOP (``on``) or SIGCONT the given processes: a storage stall, as the client sees it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)
