"""A document changed after acceptance (in the broker) never reaches the receiver."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.headers import MessageHeaders
from tests.conftest import with_message_id
from tests.integration.helpers import base_url, inbox, submit

pytestmark = pytest.mark.rabbitmq


async def test_copy_tampered_in_the_broker_is_refused_at_delivery(
    running_gateway: Gateway, sample_formd: bytes, amqp_url: str
) -> None:
    """A forged copy injected into the delivery queue is dead-lettered as digest-mismatch."""
    folder = inbox(running_gateway, "TH")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("blocked, so that the message stays claimable")
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, with_message_id(sample_formd, message_id)))[
            0
        ] == 202
    payload = await running_gateway.journal.payload(message_id)  # type: ignore[union-attr]
    assert payload is not None
    forged = payload.replace(b"Ball bearings", b"Gold bearings")
    assert forged != payload
    prefix = running_gateway.settings.amqp.prefix
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{prefix}.route")
        await exchange.publish(
            aio_pika.Message(
                forged,
                message_id=message_id,
                headers=dict(MessageHeaders(sender="SG", document_type="EFD").to_amqp()),
            ),
            routing_key="TH.formd",
        )
    view: dict[str, object] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{base_url(running_gateway)}/v1/messages/{message_id}") as r:
                view = await r.json()
            timeline = view["timeline"]
            assert isinstance(timeline, list)
            if any(row["error"] == "digest-mismatch" for row in timeline):
                break
            await asyncio.sleep(0.1)
    assert any(row["error"] == "digest-mismatch" for row in view["timeline"]), view  # type: ignore[attr-defined]
    folder.unlink()
    await asyncio.sleep(1.5)
    delivered = list(folder.glob("*.xml")) if folder.is_dir() else []
    assert all(b"Gold bearings" not in p.read_bytes() for p in delivered)
