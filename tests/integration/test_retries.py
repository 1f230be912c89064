"""Temporary delivery failures are retried on the schedule; exhausted ones are parked."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import aio_pika
import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import inbox, submit, wait_for_file

pytestmark = pytest.mark.rabbitmq


def _block(gateway: Gateway, country: str) -> None:
    """Put a file where the country's drop folder should be, so every write fails."""
    folder = inbox(gateway, country)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")


async def test_temporary_failure_is_retried_until_delivered(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A message whose receiver folder is blocked is delivered once the folder recovers."""
    _block(running_gateway, "TH")
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(
            session, running_gateway, with_message_id(sample_formd, message_id)
        )
    assert status == 202, body
    await asyncio.sleep(0.4)
    folder = inbox(running_gateway, "TH")
    assert folder.is_file(), "the message must not have been delivered while blocked"
    folder.unlink()
    assert await wait_for_file(folder / f"{message_id}.xml", timeout=10)
    depths = await running_gateway.broker.queue_depths()
    assert depths[f"{running_gateway.settings.amqp.prefix}.dead"] == 0


async def test_exhausted_retries_end_in_dead_letters_with_the_reason(
    running_gateway: Gateway, sample_formd: bytes, amqp_url: str
) -> None:
    """After every retry step fails the message is parked with reason, route and attempts."""
    _block(running_gateway, "TH")
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        status, _, _ = await submit(
            session, running_gateway, with_message_id(sample_formd, message_id)
        )
    assert status == 202
    dead_queue = f"{running_gateway.settings.amqp.prefix}.dead"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_queue)
        parked = None
        for _ in range(100):
            parked = await queue.get(no_ack=True, fail=False)
            if parked is not None:
                break
            await asyncio.sleep(0.1)
    assert parked is not None, "the message never reached the dead letters"
    headers = parked.headers or {}
    assert parked.message_id == message_id
    assert headers["x-asw-reason"] == "retries-exhausted"
    assert headers["x-asw-last-error"] == "peer-unavailable"
    assert headers["x-asw-attempt"] == 3  # the first try plus the two retry steps
    assert headers["x-asw-original-routing-key"] == "TH.formd"
    await asyncio.sleep(1.5)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_queue)
        assert await queue.get(no_ack=True, fail=False) is None, "a second copy was parked"
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{running_gateway.port}/v1/messages/{message_id}"
        async with session.get(url) as response:
            view = await response.json()
    assert view["state"] == "DEAD"
    assert view["attempts"] == 3
    assert [r["state"] for r in view["timeline"]].count("RETRYING") == 2
    assert f"<cm:MessageID>{message_id}</cm:MessageID>".encode() in parked.body
    assert b"SignatureValue" in parked.body  # the document as signed for SG by the gateway
