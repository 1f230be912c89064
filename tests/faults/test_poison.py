"""Scenario 4: a poison message that crashes the worker handling it.

The crash is real: the gateway runs two worker processes; whenever the poison message is in
flight at the NSW (which holds that one message id and passes every other document on), the
test finds the worker process owning that TCP connection and kills it with SIGKILL, as a
segfault or an out-of-memory kill would. The supervisor starts a new worker each time.

RabbitMQ counts the returns of the unacked message (``x-delivery-count``). Two ways to park it
are checked: the worker parks it itself once ``amqp.poison_after`` deliveries were interrupted
(reason ``poison-message``, journal DEAD), and, as the backstop, the quorum queue dead-letters
it by itself past ``amqp.delivery_limit`` (the journal is not told). The claim lease is short
(1 s) and each kill waits until it has run out, so that every redelivery is claimed and handed
over again (otherwise the gateway's retry ladder, not the delivery count, would park it).
Meanwhile 200 other messages must all be delivered.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from asw_toolkit.processes import http_push_party
from gateway.settings import AmqpSettings
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    Arrival,
    Load,
    NswThread,
    Summary,
    documents,
    drain_dead_letters,
    journal_views,
    queues_empty,
    received,
    send_until_accepted,
    socket_owner,
    wait_delivered,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

LEASE_SECONDS = 1.0
OTHERS = 200
MAX_KILLS = 10
STRICT = os.environ.get("ASW_FAULTS_STRICT") == "1"


async def _next_arrival(nsw: NswThread, timeout: float) -> Arrival | None:
    try:
        return await asyncio.to_thread(nsw.arrivals.get, True, timeout)
    except queue.Empty:
        return None


@pytest.mark.parametrize(
    ("parked_by", "delivery_limit", "poison_after"),
    [("worker", 5, 2), ("broker", 3, 10)],
)
async def test_poison_message_is_dead_lettered_after_the_delivery_limit_without_blocking(
    gateway_factory: GatewayFactory,
    amqp_url: str,
    report: Callable[[Summary], None],
    *,
    parked_by: str,
    delivery_limit: int,
    poison_after: int,
) -> None:
    """A message whose hand-over kills its worker is parked after the limit; the rest flow."""
    begun = time.monotonic()
    poison_docs = documents(1)
    (poison,) = poison_docs
    with NswThread("TH", held_ids={poison}) as nsw:
        gateway = gateway_factory(
            workers=2,
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=30)},
            lease_seconds=LEASE_SECONDS,
            delivery_limit=delivery_limit,
            poison_after=poison_after,
            retry_schedule=(0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 5.0),
        )
        await asyncio.to_thread(gateway.start)
        load = Load()
        await send_until_accepted(gateway.url, poison_docs, load=load, deadline=begun + 20)
        others = documents(OTHERS)
        sender = asyncio.create_task(
            send_until_accepted(gateway.url, others, load=load, concurrency=8, deadline=begun + 60)
        )
        kills: list[int] = []
        while len(kills) < MAX_KILLS:
            arrival = await _next_arrival(nsw, timeout=15)
            if arrival is None:
                break  # no further hand-over of the poison: the broker parked it
            await asyncio.sleep(max(0.0, arrival.at + LEASE_SECONDS + 0.3 - time.monotonic()))
            children = await asyncio.to_thread(gateway.children)
            pid = socket_owner(arrival.client_port, nsw.port, children)
            assert pid is not None, f"no worker owns port {arrival.client_port}: {children}"
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
        await sender
        assert not load.not_accepted, load.refused_for_good
        missing = await wait_delivered(nsw.url, others, timeout=40)
        await asyncio.to_thread(gateway.wait_ready, 30)
        await wait_until(lambda: queues_empty(gateway.url), timeout=20)
        await asyncio.sleep(LEASE_SECONDS + 2)
        arrivals = await received(nsw.url)
        parked = await drain_dead_letters(amqp_url, gateway.prefix)
        view: dict[str, Any] = (await journal_views(gateway.url, [poison]))[poison]
        headers = parked.get(poison, {})
        summary = Summary.count(
            f"poison-worker-crash-{parked_by}-parks",
            load,
            arrivals,
            parked=parked,
            extra={
                "dead": len(parked),
                "kills": len(kills),
                "poison_dead_reason": headers.get("x-asw-reason")
                or headers.get("x-first-death-reason"),
                "poison_journal_state": view.get("state"),
                "poison_claims": view.get("attempts"),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert not missing, f"{len(missing)} messages behind the poison were not delivered"
    assert poison in parked, f"the poison message is not in the dead letters: {list(parked)}"
    assert poison not in arrivals
    assert summary.lost == 0
    assert set(parked) == {poison}, parked
    if parked_by == "worker":
        # Redelivered with x-delivery-count = poison_after: parked before a further hand-over.
        assert len(kills) == poison_after, kills
        assert headers.get("x-asw-reason") == "poison-message", headers
        assert view["state"] == "DEAD", view
        assert view["last_error"] == "poison-message", view
    else:
        # Parked by RabbitMQ: its reason, none of the gateway's headers, and the journal still
        # says DELIVERING (nobody told it).
        assert len(kills) == delivery_limit + 1, kills
        assert headers.get("x-first-death-reason") == "delivery_limit", headers
        assert "x-asw-reason" not in headers, headers
    # Messages the killed workers had in flight may be handed over twice (see docs/faults.md).
    assert summary.duplicates <= len(kills) * AmqpSettings().prefetch
    if STRICT:
        assert summary.duplicates == 0
