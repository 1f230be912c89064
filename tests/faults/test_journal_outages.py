"""The journal blinks under a real gateway: never a second hand-over, 503 while it lasts.

Each scenario runs ``asw-gateway serve`` with its journal on a PostgreSQL cluster of the test's
own (``tests.faults.private_postgres``; the shared server is never touched), the shared
RabbitMQ under a queue prefix of its own, and TH delivered by ``http-push`` to a simulated NSW
that cannot be asked for a message's status (no ``status_url``): nothing but the gateway's own
bookkeeping stands between a journal fault and a second hand-over. Messages go in at a steady
rate and each is resent under the same id after a 503 until accepted; a few seconds in, the
cluster is broken one way, then healed. Every count is taken at the NSW.

Checked: 0 lost, 0 handed over twice; every refusal is a 503 with ``Retry-After``; nothing is
refused from ``HEAL_GRACE_SECONDS`` after the cluster is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from asw_toolkit.processes import http_push_party
from asw_toolkit.simulator import Behaviour
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    CRASH_LEASE_SECONDS,
    CRASH_RETRY_SCHEDULE,
    NswThread,
    Summary,
    documents,
    drain_dead_letters,
    journal_views,
    queues_empty,
    received,
    send_until_accepted,
    settle,
    wait_until,
)
from tests.faults.outage import (
    PacedSender,
    cluster_pids,
    freeze,
    in_window,
    kill_one_backend,
    refused_by_code,
    terminate_all_backends,
)
from tests.faults.private_postgres import PrivatePostgres, private_postgres

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

OP_TIMEOUT_SECONDS = 2.0
HEAL_GRACE_SECONDS = 3.0
"""After the cluster is back: the pool replaces its broken connections (one failure each)."""
FAULT_AFTER_SECONDS = 3.0


def _restart(mode: str) -> Callable[[PrivatePostgres], None]:
    def restart(cluster: PrivatePostgres) -> None:
        cluster.stop(mode)
        cluster.start()

    return restart


def _stopped_for(seconds: float) -> Callable[[PrivatePostgres], None]:
    def stopped(cluster: PrivatePostgres) -> None:
        cluster.stop("fast")
        time.sleep(seconds)
        cluster.start()

    return stopped


def _killed(cluster: PrivatePostgres) -> None:
    kill_one_backend(cluster)
    time.sleep(1.0)  # the postmaster resets every session and recovers


def _terminated(cluster: PrivatePostgres) -> None:
    terminate_all_backends(cluster)


FAULTS: dict[str, tuple[Callable[[PrivatePostgres], None], int, float]] = {
    # name: (fault, messages, rate per second)
    "postgres-restart-fast": (_restart("fast"), 300, 30.0),
    "postgres-restart-immediate": (_restart("immediate"), 300, 30.0),
    "postgres-backend-killed": (_killed, 300, 30.0),
    "postgres-backends-terminated": (_terminated, 300, 30.0),
    "postgres-stopped-15s": (_stopped_for(15.0), 400, 16.0),
}


@pytest.mark.parametrize("scenario", list(FAULTS))
async def test_postgres_journal_blink_never_hands_over_twice(
    scenario: str, gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """A PostgreSQL journal restarted, killed or stopped under load: none lost, none twice."""
    fault, messages, rate = FAULTS[scenario]
    begun = time.monotonic()
    with (
        private_postgres() as cluster,
        NswThread("TH", behaviour=Behaviour(name="slow", delay_seconds=0.2)) as nsw,
    ):
        gateway = gateway_factory(
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=5)},
            journal_url=cluster.url,
            journal_extra=f"op_timeout_seconds = {OP_TIMEOUT_SECONDS:g}",
            lease_seconds=CRASH_LEASE_SECONDS,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)
        sender = PacedSender(
            gateway.url, documents(messages), rate=rate, deadline=time.monotonic() + 90
        )
        sending = asyncio.create_task(sender.run())
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        broken = time.monotonic()
        await asyncio.to_thread(fault, cluster)
        healed = time.monotonic()
        load = await sending
        assert not load.not_accepted, (load.refused_for_good, load.refusals)
        missing, arrivals = await settle(nsw.url, gateway.url, load.accepted, timeout=60)
        during = in_window(sender.answers, broken, healed + HEAL_GRACE_SECONDS)
        after = in_window(sender.answers, healed + HEAL_GRACE_SECONDS, float("inf"))
        refusals = [a for a in sender.answers if a.status != 202]
        summary = Summary.count(
            scenario,
            load,
            arrivals,
            refused_by_code=refused_by_code(sender.answers),
            extra={
                "refused_during": len([a for a in during if a.status != 202]),
                "refused_after_heal": len([a for a in after if a.status != 202]),
                "without_retry_after": len([a for a in refusals if not a.retry_after]),
                "longest_answer_s": round(max(a.ended - a.started for a in sender.answers), 2),
                "fault_s": round(healed - broken, 1),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.lost == 0
    assert summary.duplicates == 0, gateway.log_tail()
    assert all(a.status == 503 and a.retry_after for a in refusals), refused_by_code(refusals)
    assert not [a for a in after if a.status != 202], refused_by_code(after)


# --- storage stalls: 503 within the operation timeout (issue 14, point 4) -----------------------

STALL_SECONDS = 5.0
STALL_MARGIN_SECONDS = 1.5
"""What an answer during a stall may take beyond ``journal.op_timeout_seconds``."""
LOCKER = (
    "import sqlite3, sys, time\n"
    "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
    "db.execute('BEGIN EXCLUSIVE')\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "db.execute('COMMIT')\n"
)


def _sqlite_locked(journal: Path, seconds: float) -> None:
    """Another process holds the SQLite journal's write lock for ``seconds``."""
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(journal), f"{seconds:g}"],
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            locker.wait(timeout=seconds + 30)
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait()


def _postgres_frozen(cluster: PrivatePostgres, seconds: float) -> None:
    """Every process of the private cluster stopped (SIGSTOP) for ``seconds``: a frozen disk."""
    pids = cluster_pids(cluster)
    freeze(pids, on=True)
    try:
        time.sleep(seconds)
    finally:
        freeze(pids, on=False)


@pytest.mark.parametrize("backend", ["sqlite-locked", "postgres-frozen"])
async def test_storage_stall_is_a_503_within_the_operation_timeout(
    backend: str, gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """A journal that stops answering gives 503 within op_timeout + margin, and heals."""
    begun = time.monotonic()
    scenario = f"{backend}-{STALL_SECONDS:g}s"
    with contextlib.ExitStack() as stack:
        nsw = stack.enter_context(NswThread("TH"))
        cluster = stack.enter_context(private_postgres()) if backend == "postgres-frozen" else None
        gateway = gateway_factory(
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=5)},
            journal_url=cluster.url if cluster is not None else None,
            journal_extra=f"op_timeout_seconds = {OP_TIMEOUT_SECONDS:g}",
            lease_seconds=CRASH_LEASE_SECONDS,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)
        sender = PacedSender(gateway.url, documents(240), rate=20.0, deadline=time.monotonic() + 90)
        sending = asyncio.create_task(sender.run())
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        broken = time.monotonic()
        if cluster is not None:
            await asyncio.to_thread(_postgres_frozen, cluster, STALL_SECONDS)
        else:
            await asyncio.to_thread(_sqlite_locked, gateway.workdir / "journal.db", STALL_SECONDS)
        healed = time.monotonic()
        load = await sending
        assert not load.not_accepted, (load.refused_for_good, load.refusals)
        missing, arrivals = await settle(nsw.url, gateway.url, load.accepted, timeout=60)
        # Answers to attempts started in the stall, once the journal's queue of waiting
        # operations has had one timeout to fill up.
        during = in_window(sender.answers, broken, healed)
        after = in_window(sender.answers, healed + HEAL_GRACE_SECONDS, float("inf"))
        slowest = max((a.ended - a.started for a in during), default=0.0)
        summary = Summary.count(
            scenario,
            load,
            arrivals,
            refused_by_code=refused_by_code(sender.answers),
            extra={
                "refused_during": len([a for a in during if a.status != 202]),
                "refused_after_heal": len([a for a in after if a.status != 202]),
                "slowest_answer_in_stall_s": round(slowest, 2),
                "op_timeout_s": OP_TIMEOUT_SECONDS,
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.lost == 0
    assert summary.duplicates == 0
    assert [a for a in during if a.status == 503], "the stall was never refused"
    assert all(a.status in (202, 503) for a in during), refused_by_code(during)
    assert slowest <= OP_TIMEOUT_SECONDS + STALL_MARGIN_SECONDS, slowest
    assert not [a for a in after if a.status != 202], refused_by_code(after)


# --- the consumer always settles its message (issue 14, point 2) -------------------------------


async def test_parking_that_cannot_be_recorded_leaves_nothing_unsettled(
    gateway_factory: GatewayFactory, amqp_url: str, report: Callable[[Summary], None]
) -> None:
    """DEAD cannot be written (journal locked): the copy is postponed, then parked; none stuck."""
    begun = time.monotonic()
    with NswThread("TH", behaviour=Behaviour(name="down")) as nsw:
        gateway = gateway_factory(
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=2)},
            journal_extra="op_timeout_seconds = 1",
            retry_schedule=(0.5,),
        )
        await asyncio.to_thread(gateway.start)
        docs = documents(20)
        load = await send_until_accepted(
            gateway.url, docs, concurrency=20, deadline=time.monotonic() + 30
        )
        assert not load.not_accepted, load.refusals
        # Locked right away: the second (last) attempt of each meets a journal that cannot
        # record DEAD, and often cannot claim either.
        await asyncio.to_thread(_sqlite_locked, gateway.workdir / "journal.db", 4.0)

        async def all_dead() -> bool:
            views = await journal_views(gateway.url, docs)
            return all(v.get("state") == "DEAD" for v in views.values())

        settled = await wait_until(all_dead, timeout=40, every=0.5)
        await wait_until(lambda: queues_empty(gateway.url), timeout=20)
        await asyncio.to_thread(gateway.stop)  # unacked copies would go back to the queue now
        left = await _queue_depth(amqp_url, f"{gateway.prefix}.deliver.TH")
        parked = await drain_dead_letters(amqp_url, gateway.prefix)
        log = (gateway.workdir / "gateway.log").read_text()
        summary = Summary.count(
            "sqlite-locked-while-parking",
            load,
            await received(nsw.url),
            parked=parked,
            extra={
                "dead": len(set(parked) & set(docs)),
                "left_in_queue": left,
                "parking_postponed": log.count('"message_parking_postponed"'),
                "handler_failed": log.count('"message_handler_failed"'),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert settled, "not every message reached DEAD in the journal"
    assert set(docs) <= set(parked), "not every message was parked"
    assert left == 0, "messages were left unsettled in the delivery queue"
    assert summary.lost == 0
    assert summary.extra["handler_failed"] == 0
    assert summary.extra["parking_postponed"], "the journal never refused DEAD: no fault"


async def _queue_depth(amqp_url: str, name: str) -> int:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
