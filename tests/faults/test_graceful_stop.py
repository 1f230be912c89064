"""SIGTERM under load with hand-overs longer than the old fixed 10 s drain (issue 14, point 8).

The NSW takes 13 s to answer each document (``slow``; it stores the document when it answers)
and the adapter's timeout is 16 s, so the default drain is 21 s. SIGTERM comes right after the
hand-overs began, so each still needs more than the old fixed 10 s. With ``prefetch = 16``, 16
hand-overs are under way when the gateway gets SIGTERM. It must refuse new documents at once
(503 ``draining`` with Retry-After, ``/readyz`` 503), let the 16 finish, record and ack them,
and only then close the journal and exit. After a restart (the NSW now answering at once) the
rest is delivered; the NSW must have received no document twice. The claim's lease (18 s) is
waited out at the end, so that a copy cut short would have been handed over again in time to
be counted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import aiohttp
import pytest

from asw_toolkit.processes import http_push_party
from asw_toolkit.simulator import Behaviour
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    CRASH_RETRY_SCHEDULE,
    NswThread,
    Summary,
    documents,
    nsw_stats,
    queues_empty,
    received,
    send_until_accepted,
    set_behaviour,
    wait_delivered,
    wait_until,
)
from tests.faults.outage import problem_code

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

MESSAGES = 200
NSW_SECONDS = 13.0
ADAPTER_TIMEOUT_SECONDS = 16.0
LEASE_SECONDS = 18.0
PREFETCH = 16


async def test_sigterm_waits_for_hand_overs_longer_than_ten_seconds(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """SIGTERM mid-hand-over: drained to the end, new work refused, none handed over twice."""
    begun = time.monotonic()
    with NswThread("TH", behaviour=Behaviour(name="slow", delay_seconds=NSW_SECONDS)) as nsw:
        gateway = gateway_factory(
            parties_config={
                "TH": http_push_party(nsw.documents_url, timeout_seconds=ADAPTER_TIMEOUT_SECONDS)
            },
            prefetch=PREFETCH,
            lease_seconds=LEASE_SECONDS,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)
        docs = documents(MESSAGES)
        load = await send_until_accepted(
            gateway.url, docs, concurrency=20, deadline=time.monotonic() + 30
        )
        assert not load.not_accepted, load.refusals

        async def in_flight() -> bool:
            stats = await nsw_stats(nsw.url)
            return int(stats.get("requests", 0)) >= PREFETCH

        assert await wait_until(in_flight, timeout=15, every=0.1), gateway.log_tail()
        handing_over = time.monotonic()
        assert gateway.process is not None
        stopping = time.monotonic()
        os.killpg(gateway.process.pid, signal.SIGTERM)
        await asyncio.sleep(1.0)
        refused, ready_status = await _during_drain(gateway.url, documents(1))
        exit_code = await asyncio.to_thread(gateway.process.wait, 60)
        stop_seconds = time.monotonic() - stopping
        at_stop = await received(nsw.url)
        await set_behaviour(nsw.url, "accept")
        await asyncio.to_thread(gateway.start)
        missing = await wait_delivered(nsw.url, load.accepted, timeout=60)
        await wait_until(lambda: queues_empty(gateway.url), timeout=20)
        await asyncio.sleep(LEASE_SECONDS + 2)  # a copy cut short would be handed over by now
        arrivals = await received(nsw.url)
        summary = Summary.count(
            "sigterm-drain-13s-hand-overs",
            load,
            arrivals,
            refused_by_code=refused[0],
            extra={
                "handed_over_before_exit": len(at_stop),
                "sigterm_after_hand_over_began_s": round(stopping - handing_over, 1),
                "stop_seconds": round(stop_seconds, 1),
                "readyz_while_draining": ready_status,
                "exit_code": exit_code,
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.duplicates == 0
    assert summary.lost == 0
    assert exit_code == 0
    assert len(at_stop) >= PREFETCH, "the hand-overs in flight were not finished before exit"
    # The hand-overs needed more than the old fixed 10 s drain after SIGTERM, and got it.
    assert 10.5 < stop_seconds < ADAPTER_TIMEOUT_SECONDS + 10, stop_seconds
    assert refused == ("draining:1", True), refused
    assert ready_status == 503


async def _during_drain(gateway_url: str, docs: dict[str, bytes]) -> tuple[tuple[str, bool], int]:
    """A new document and ``/readyz`` while the gateway drains: (code:1, Retry-After), status."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        (body,) = docs.values()
        async with session.post(
            gateway_url + "/v1/messages", data=body, headers={"Content-Type": "application/xml"}
        ) as response:
            code = problem_code(response.status, await response.text())
            refused = (f"{code}:1", "Retry-After" in response.headers)
        async with session.get(gateway_url + "/readyz") as response:
            return refused, response.status
