"""Scenario 2: RabbitMQ stopped in the middle of a load (``rabbitmqctl stop_app``) and started
again a few seconds later.

Submissions refused with 503 meanwhile are resent by the sender under the same message id
until accepted. The broker is a private node of the scenario's own
(``tests.faults.private_rabbitmq``), never the shared one.
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
    nsw_stats,
    send_until_accepted,
    settle,
    wait_arrivals,
    wait_broker,
)
from tests.faults.private_rabbitmq import private_rabbit

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

MESSAGES = 600
STOP_AFTER_DELIVERED = 150
DOWN_SECONDS = 3.0


async def test_broker_stopped_mid_load_delivers_each_accepted_message_once(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """RabbitMQ down mid-load: 503s resent until accepted, every accepted message delivered."""
    with private_rabbit(1) as rabbit, NswThread("TH") as nsw:
        node = rabbit.nodes[0]
        begun = time.monotonic()
        gateway = gateway_factory(
            amqp_url=node.url,
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=10)},
            lease_seconds=CRASH_LEASE_SECONDS,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)
        load = Load()
        sender = asyncio.create_task(
            send_until_accepted(
                gateway.url, documents(MESSAGES), load=load, concurrency=32, deadline=begun + 80
            )
        )

        assert await wait_arrivals(nsw, STOP_AFTER_DELIVERED, timeout=40, every=0.05), (
            gateway.log_tail()
        )
        at_stop = {"accepted_at_stop": len(load.accepted)}
        try:
            await asyncio.to_thread(node.ctl, "stop_app")
            await asyncio.sleep(DOWN_SECONDS)
        finally:
            await asyncio.to_thread(node.ctl, "start_app", timeout=120)
            came_back = await asyncio.to_thread(wait_broker, 90, node.amqp_port)
            assert came_back, "RabbitMQ did not come back"
        refused_503 = load.refusals["503"]
        await sender
        assert not load.not_accepted, (load.refused_for_good, load.refusals)
        await asyncio.to_thread(gateway.wait_ready, 60)
        missing, arrivals = await settle(nsw.url, gateway.url, load.accepted, timeout=45)
        stats = await nsw_stats(nsw.url)
        summary = Summary.count(
            "broker-stop-app",
            load,
            arrivals,
            extra={
                **at_stop,
                "refused_503": load.refusals["503"],
                "resent": sum(load.refusals.values()),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert refused_503 or load.refusals["503"], "no submission was refused while RabbitMQ was down"
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.lost == 0
    assert summary.duplicates == 0, stats["duplicated_message_ids"]
