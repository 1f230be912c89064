"""Two gateway nodes sharing one PostgreSQL journal and one set of queues; one is killed.

Two ``asw-gateway serve`` processes with the same topology prefix and the same PostgreSQL
journal are two nodes of one hub: both accept submissions and both consume every delivery
queue. Senders split the load between them; one node gets ``kill -9`` mid-load and comes back.
The NSW (TH) answers status queries, so a copy redelivered after the kill is asked about
before any second hand-over. Every accepted message must reach the NSW exactly once, whichever
node accepted it and whichever delivered it: the journal's claims decide across nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from asw_toolkit.processes import http_push_party
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    CRASH_LEASE_SECONDS,
    CRASH_RETRY_SCHEDULE,
    Load,
    NswThread,
    Summary,
    documents,
    send_until_accepted,
    settle,
    wait_arrivals,
)
from tests.journal.conftest import fresh_postgres_journal

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

MESSAGES = 600
KILL_AFTER_DELIVERED = 150


async def test_two_nodes_on_one_postgres_journal_deliver_each_accepted_message_once(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """Two nodes, one journal: kill -9 of one mid-load loses nothing and duplicates nothing."""
    begun = time.monotonic()
    async with fresh_postgres_journal() as journal_url:
        with NswThread("TH") as nsw:
            options = {
                "parties_config": {
                    "TH": http_push_party(
                        nsw.documents_url,
                        timeout_seconds=10,
                        status_url=f"{nsw.url}/documents/{{message_id}}",
                    )
                },
                "journal_url": journal_url,
                "lease_seconds": CRASH_LEASE_SECONDS,
                "retry_schedule": CRASH_RETRY_SCHEDULE,
            }
            first = gateway_factory(**options)
            second = gateway_factory(**options, prefix=first.prefix)
            await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
            docs = documents(MESSAGES)
            ids = list(docs)
            load = Load()
            senders = [
                asyncio.create_task(
                    send_until_accepted(
                        node.url,
                        {i: docs[i] for i in ids[share::2]},
                        load=load,
                        concurrency=25,
                        deadline=begun + 75,
                    )
                )
                for share, node in enumerate((first, second))
            ]

            assert await wait_arrivals(nsw, KILL_AFTER_DELIVERED, timeout=45, every=0.02), (
                first.log_tail()
            )
            await asyncio.to_thread(first.kill_hard)
            at_kill = {"delivered_at_kill": len(set(nsw.simulator.received))}
            await asyncio.sleep(0.5)
            await asyncio.to_thread(first.start)
            await asyncio.gather(*senders)
            assert not load.not_accepted, (load.refused_for_good, load.refusals)

            # The queues are shared: the second node's view of them is the hub's.
            missing, arrivals = await settle(nsw.url, second.url, load.accepted, timeout=40)
            summary = Summary.count(
                "two-nodes-postgres-kill-9",
                load,
                arrivals,
                extra={
                    **at_kill,
                    "resent": sum(load.refusals.values()),
                    "seconds": round(time.monotonic() - begun, 1),
                },
            )
            report(summary)
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.lost == 0
    assert summary.duplicates == 0
