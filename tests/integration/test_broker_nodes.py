"""The gateway given several broker addresses (``amqp.urls``) uses whichever node answers."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import pytest
import structlog

from asw_toolkit.processes import free_port
from gateway.broker import Broker
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import AmqpSettings
from tests.conftest import delete_topology

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


async def test_retry_queue_declared_earlier_as_classic_is_kept(amqp_url: str) -> None:
    """A classic retry queue from an older gateway is kept (with a warning), not a failed start."""
    topology = Topology(f"test-{uuid.uuid4().hex[:8]}")
    settings = AmqpSettings(url=amqp_url, retry_schedule_seconds=(0.5,))
    broker = Broker(settings, topology, frozenset({"TH"}))
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            topology.retry_queue(500),
            durable=True,
            arguments={"x-message-ttl": 500, "x-dead-letter-exchange": topology.route_exchange},
        )
    await broker.start()
    try:
        with structlog.testing.capture_logs() as logs:
            assert await broker.wait_connected(15), "the classic retry queue stopped the start"
        assert any(e["event"] == "broker_retry_queue_classic" for e in logs), logs
    finally:
        await broker.stop(1)
        await delete_topology(amqp_url, topology, MEMBER_STATES, broker.retry_delays_ms)


async def test_quorum_queues_are_declared_with_balanced_leaders(amqp_url: str) -> None:
    """A fresh delivery queue carries ``x-queue-leader-locator: balanced`` (RabbitMQ compares
    it on redeclaration: the same arguments with it are accepted, without it refused)."""
    topology = Topology(f"test-{uuid.uuid4().hex[:8]}")
    settings = AmqpSettings(url=amqp_url)
    broker = Broker(settings, topology, frozenset({"TH"}))
    await broker.start()
    try:
        assert await broker.wait_connected(15)
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": topology.dead_exchange,
            "x-delivery-limit": settings.delivery_limit,
        }
        connection = await aio_pika.connect(amqp_url, timeout=5)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(
                topology.delivery_queue("TH"),
                durable=True,
                arguments={**arguments, "x-queue-leader-locator": "balanced"},
            )
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(
                    topology.delivery_queue("TH"), durable=True, arguments=arguments
                )
    finally:
        await broker.stop(1)
        await delete_topology(amqp_url, topology, MEMBER_STATES, broker.retry_delays_ms)


async def test_queue_declared_earlier_without_a_leader_locator_is_kept(amqp_url: str) -> None:
    """A delivery queue an older gateway declared without the leader locator is kept as it is
    (logged), not a failed start."""
    topology = Topology(f"test-{uuid.uuid4().hex[:8]}")
    settings = AmqpSettings(url=amqp_url)
    broker = Broker(settings, topology, frozenset({"TH"}))
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            topology.delivery_queue("TH"),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": topology.dead_exchange,
                "x-delivery-limit": settings.delivery_limit,
            },
        )
    await broker.start()
    try:
        with structlog.testing.capture_logs() as logs:
            assert await broker.wait_connected(15), "the older queue stopped the start"
        kept = [e for e in logs if e["event"] == "broker_queue_leader_kept"]
        assert [e["queue"] for e in kept] == [topology.delivery_queue("TH")], logs
    finally:
        await broker.stop(1)
        await delete_topology(amqp_url, topology, MEMBER_STATES, broker.retry_delays_ms)
