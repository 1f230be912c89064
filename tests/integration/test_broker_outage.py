"""With RabbitMQ stopped the gateway answers 503; once it is back, it accepts and delivers."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import broker_reachable, with_message_id
from tests.integration.helpers import inbox, submit, wait_for_file

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


async def test_broker_down_gives_503_then_recovers_without_restart(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """503 while RabbitMQ is stopped; afterwards a new message and the resent one are delivered."""
    refused_id = str(uuid.uuid4())
    refused = with_message_id(sample_formd, refused_id)
    _rabbitmqctl("stop_app")
    try:
        assert await _wait(lambda: not running_gateway.broker.connected, 30)
        async with aiohttp.ClientSession() as session:
            status, body, content_type = await submit(session, running_gateway, refused)
        assert status == 503, body
        assert content_type == "application/problem+json"
        assert body["code"] == "broker-unavailable"
        assert body["retryable"] is True
    finally:
        _rabbitmqctl("start_app")
    assert await _wait(broker_reachable, 60)
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
