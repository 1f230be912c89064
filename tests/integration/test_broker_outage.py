"""With RabbitMQ stopped the gateway answers 503; once it is back, it accepts and delivers.

The broker stopped is a private node of this test's own (``tests.faults.private_rabbitmq``),
never the shared one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.web import readiness
from tests.conftest import broker_reachable, make_settings, with_message_id
from tests.faults.private_rabbitmq import PrivateNode, PrivateRabbit
from tests.integration.helpers import inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
async def private_node() -> AsyncIterator[PrivateNode]:
    """A private single-node RabbitMQ, removed afterwards."""
    rabbit = PrivateRabbit(1)
    try:
        await asyncio.to_thread(rabbit.start)
        yield rabbit.nodes[0]
    finally:
        await asyncio.to_thread(rabbit.remove)


@pytest.fixture
async def running_gateway(
    tmp_path: Path, private_node: PrivateNode, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A real gateway (HTTP + the private RabbitMQ + drop folders) on an ephemeral port."""
    settings = make_settings(
        tmp_path, private_node.url, f"test-{uuid.uuid4().hex[:8]}", rsa_pki.directory
    )
    gateway = Gateway(settings)
    await gateway.start(port=0)
    assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    try:
        yield gateway
    finally:
        await gateway.stop()


async def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


async def test_broker_down_gives_503_then_recovers_without_restart(
    running_gateway: Gateway, private_node: PrivateNode, sample_formd: bytes
) -> None:
    """503 while RabbitMQ is stopped; afterwards a new message and the resent one are delivered."""
    refused_id = str(uuid.uuid4())
    refused = with_message_id(sample_formd, refused_id)
    await asyncio.to_thread(private_node.ctl, "stop_app")
    try:
        assert await _wait(lambda: not running_gateway.broker.connected, 30)
        async with aiohttp.ClientSession() as session:
            status, body, content_type = await submit(session, running_gateway, refused)
        assert status == 503, body
        assert content_type == "application/problem+json"
        assert body["code"] == "broker-unavailable"
        assert body["retryable"] is True
    finally:
        await asyncio.to_thread(private_node.ctl, "start_app", timeout=120)
    assert await _wait(lambda: broker_reachable(port=private_node.amqp_port), 60)
    assert await running_gateway.broker.wait_connected(60), "gateway did not reconnect"
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(
            session, running_gateway, with_message_id(sample_formd, message_id)
        )
    assert status == 202, body
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{message_id}.xml")
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, running_gateway, refused)
    assert status == 202, body
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{refused_id}.xml")


async def test_broker_alarm_refuses_at_once_with_broker_blocked_and_readiness_says_so(
    running_gateway: Gateway, private_node: PrivateNode, sample_formd: bytes
) -> None:
    """A broker memory alarm: 503 broker-blocked within a second, nothing journalled, then 202."""
    journal = running_gateway.journal
    assert journal is not None
    refused_id = str(uuid.uuid4())
    refused = with_message_id(sample_formd, refused_id)
    await asyncio.to_thread(private_node.ctl, "set_vm_memory_high_watermark", "0.0000001")
    try:
        assert await _wait(lambda: running_gateway.broker.blocked, 10), "no connection.blocked"
        status, body = await readiness(running_gateway.broker, journal)
        assert (status, body["broker"]) == (503, "blocked"), body
        began = time.monotonic()
        async with aiohttp.ClientSession() as session:
            status, problem, _ = await submit(session, running_gateway, refused)
        answered_in = time.monotonic() - began
        assert status == 503, problem
        assert problem["code"] == "broker-blocked"
        assert problem["retryable"] is True
        assert answered_in < 2.0, f"the refusal took {answered_in:.1f} s"
        assert await journal.get(refused_id) is None, "refused yet journalled"
    finally:
        await asyncio.to_thread(private_node.ctl, "set_vm_memory_high_watermark", "0.4")
    assert await _wait(lambda: running_gateway.broker.state == "connected", 10)
    status, body = await readiness(running_gateway.broker, journal)
    assert status == 200, body
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, refused)
    assert status == 202, problem
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{refused_id}.xml")
