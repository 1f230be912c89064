"""Scenario 3: the receiving NSW fails for a while (errors, then no answer) and recovers; or it
refuses the documents for good.

TH is reached by ``http-push`` (timeout 1 s, breaker after 5 failures, open for 1 s) at a
simulated NSW whose behaviour the test switches at run time (``POST /behaviour``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from asw_toolkit.processes import GatewayProcess, http_push_party
from gateway.core.headers import MessageHeaders
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    Load,
    NswThread,
    Summary,
    documents,
    drain_dead_letters,
    journal_views,
    nsw_stats,
    queues_empty,
    received,
    send_until_accepted,
    set_behaviour,
    wait_delivered,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ADAPTER_TIMEOUT = 1.0
SCHEDULE = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0)
FAIL_COUNT = 15
STRICT = os.environ.get("ASW_FAULTS_STRICT") == "1"


def _gateway(factory: GatewayFactory, nsw: NswThread) -> GatewayProcess:
    return factory(
        parties_config={
            "TH": http_push_party(
                nsw.documents_url,
                timeout_seconds=ADAPTER_TIMEOUT,
                breaker_failures=5,
                breaker_reset_seconds=1.0,
            )
        },
        lease_seconds=5.0,
        retry_schedule=SCHEDULE,
    )


async def _settle(gateway: GatewayProcess, seconds: float = 2.0) -> None:
    await wait_until(lambda: queues_empty(gateway.url), timeout=20)
    await asyncio.sleep(seconds)


def _errors(view: dict[str, Any]) -> list[str]:
    return [t["error"] for t in view.get("timeline", []) if t["state"] == "RETRYING"]


async def test_failing_then_silent_endpoint_recovers_nothing_lost_nothing_twice(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """500s, then no answer past the adapter timeout, then recovery: all delivered exactly once."""
    begun = time.monotonic()
    with NswThread("TH") as nsw:
        gateway = _gateway(gateway_factory, nsw)
        await asyncio.to_thread(gateway.start)
        await set_behaviour(nsw.url, "fail-then-recover", fail_count=FAIL_COUNT)
        load = Load()
        first = documents(100)
        await send_until_accepted(gateway.url, first, load=load, deadline=begun + 30)
        assert not await wait_delivered(nsw.url, first, timeout=45), gateway.log_tail()

        await set_behaviour(nsw.url, "timeout")
        second = documents(50)
        await send_until_accepted(gateway.url, second, load=load, deadline=begun + 50)
        await asyncio.sleep(4 * ADAPTER_TIMEOUT)
        await set_behaviour(nsw.url, "accept")
        missing = await wait_delivered(nsw.url, load.accepted, timeout=45)
        await _settle(gateway)
        arrivals = await received(nsw.url)
        stats = await nsw_stats(nsw.url)
        views = await journal_views(gateway.url, second)
        summary = Summary.count(
            "endpoint-errors-then-timeouts",
            load,
            arrivals,
            extra={
                "nsw_answers": ",".join(f"{k}:{v}" for k, v in stats["answers"].items()),
                "held": stats["held"],
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert not missing, f"{len(missing)} never delivered:\n{gateway.log_tail()}"
    assert summary.lost == 0
    assert summary.duplicates == 0, stats["duplicated_message_ids"]
    assert int(stats["answers"]["500"]) == FAIL_COUNT
    timed_out = [i for i, v in views.items() if "peer-timeout" in _errors(v)]
    assert timed_out, "no delivery ever timed out: the silent phase did not bite"


async def test_slow_endpoint_beyond_the_adapter_timeout_duplicates_only_timed_out_attempts(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """An NSW slower than the adapter timeout stores what the gateway gave up on: duplicates."""
    begun = time.monotonic()
    with NswThread("TH") as nsw:
        gateway = _gateway(gateway_factory, nsw)
        await asyncio.to_thread(gateway.start)
        await set_behaviour(nsw.url, "slow", delay=2 * ADAPTER_TIMEOUT)
        load = await send_until_accepted(gateway.url, documents(20), deadline=begun + 30)
        await asyncio.sleep(4 * ADAPTER_TIMEOUT)
        await set_behaviour(nsw.url, "accept")
        missing = await wait_delivered(nsw.url, load.accepted, timeout=45)
        await _settle(gateway, 2 * ADAPTER_TIMEOUT + 1)
        arrivals = await received(nsw.url)
        views = await journal_views(gateway.url, load.accepted)
        summary = Summary.count(
            "endpoint-slower-than-timeout",
            load,
            arrivals,
            extra={"seconds": round(time.monotonic() - begun, 1)},
        )
        report(summary)
    assert not missing
    assert summary.lost == 0
    if STRICT:
        assert summary.duplicates == 0
    # Every extra arrival is an attempt the gateway recorded as timed out (it cannot know the
    # slow NSW went on to store the document): never more copies than timed-out attempts + 1.
    for message_id, count in arrivals.items():
        assert count <= 1 + _errors(views[message_id]).count("peer-timeout"), views[message_id]


async def test_refusing_endpoint_sends_every_message_to_the_dead_letters_with_the_reason(
    gateway_factory: GatewayFactory, amqp_url: str, report: Callable[[Summary], None]
) -> None:
    """An NSW answering 400 parks each message: journal DEAD delivery-refused, x-asw-reason."""
    begun = time.monotonic()
    with NswThread("TH") as nsw:
        gateway = _gateway(gateway_factory, nsw)
        await asyncio.to_thread(gateway.start)
        await set_behaviour(nsw.url, "reject")
        load = await send_until_accepted(gateway.url, documents(20), deadline=begun + 30)
        views: dict[str, dict[str, Any]] = {}

        async def all_dead() -> bool:
            nonlocal views
            views = await journal_views(gateway.url, load.accepted)
            return all(v.get("state") == "DEAD" for v in views.values())

        assert await wait_until(all_dead, timeout=30, every=0.5), views
        await _settle(gateway, 0.5)
        parked = await drain_dead_letters(amqp_url, gateway.prefix)
        arrivals = await received(nsw.url)
        summary = Summary.count(
            "endpoint-refuses",
            load,
            arrivals,
            parked=parked,
            extra={"dead": len(parked), "seconds": round(time.monotonic() - begun, 1)},
        )
        report(summary)
    assert summary.accepted == 20
    assert summary.delivered == 0
    assert summary.lost == 0
    assert set(parked) == set(load.accepted)
    for message_id, table in parked.items():
        headers = MessageHeaders.from_amqp(table)
        assert headers.reason == "delivery-refused", headers
        assert "HTTP 400" in (headers.detail or ""), headers
        assert headers.original_routing_key == "TH.formd"
        view = views[message_id]
        assert view["last_error"] == "delivery-refused", view
        assert view["timeline"][-1]["error"] == "delivery-refused", view


async def test_each_retry_step_sends_exactly_one_copy(gateway_factory: GatewayFactory) -> None:
    """One message to a down NSW is tried once per schedule step: no copy per retry queue."""
    schedule = (0.3, 0.6, 0.9)
    with NswThread("TH") as nsw:
        gateway = gateway_factory(
            parties_config={
                "TH": http_push_party(nsw.documents_url, timeout_seconds=1, breaker_failures=100)
            },
            retry_schedule=schedule,
        )
        await asyncio.to_thread(gateway.start)
        await set_behaviour(nsw.url, "down")
        load = await send_until_accepted(gateway.url, documents(1), deadline=time.monotonic() + 20)
        (message_id,) = load.accepted

        async def parked() -> bool:
            view = (await journal_views(gateway.url, [message_id]))[message_id]
            return bool(view.get("state") == "DEAD")

        assert await wait_until(parked, timeout=20), gateway.log_tail()
        await asyncio.sleep(2 * sum(schedule))
        stats = await nsw_stats(nsw.url)
    # With one copy per retry queue (headers-exchange bindings on an x- header match every
    # queue) the NSW saw 1 + 3 + 9 + ... attempts instead of one per step.
    assert stats["requests"] == 1 + len(schedule), stats
