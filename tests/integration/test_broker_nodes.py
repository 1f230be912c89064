"""The gateway given several broker addresses (``amqp.urls``) uses whichever node answers."""

from __future__ import annotations

import uuid

import pytest

from gateway.broker import Broker
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import AmqpSettings
from tests.conftest import delete_topology
from tests.integration.processes import free_port

pytestmark = [pytest.mark.rabbitmq]


async def test_broker_skips_a_dead_address_and_connects_to_the_next(amqp_url: str) -> None:
    """With the first of two addresses refusing connections, the broker connects to the second."""
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    topology = Topology(f"test-{uuid.uuid4().hex[:8]}")
    settings = AmqpSettings(url=dead, urls=(dead, amqp_url), reconnect_seconds=0.2)
    broker = Broker(settings, topology, frozenset({"TH"}))
    await broker.start()
    try:
        assert await broker.wait_connected(15), "did not connect to the second address"
        assert broker.url == amqp_url
        assert broker.state == "connected"
        broker.check_publishable()
    finally:
        await broker.stop(1)
        await delete_topology(amqp_url, topology, MEMBER_STATES, broker.retry_delays_ms)
    assert broker.state == "disconnected"
