"""A graceful stop in the middle of a burst loses nothing: the next gateway delivers the rest."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import delete_topology, make_settings, with_message_id
from tests.integration.helpers import base_url, inbox
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq


async def test_stop_mid_burst_then_restart_delivers_everything(
    tmp_path: Path, amqp_url: str, sample_formd: bytes, rsa_pki: PkiBundle
) -> None:
    """Every message accepted before a graceful stop is delivered after the restart."""
    settings = make_settings(tmp_path, amqp_url, f"test-{uuid.uuid4().hex[:8]}", rsa_pki.directory)
    first = Gateway(settings)
    await first.start(port=0)
    assert await first.broker.wait_connected(15)
    ids = [str(uuid.uuid4()) for _ in range(300)]
    async with aiohttp.ClientSession() as session:

        async def one(message_id: str) -> int:
            async with session.post(
                base_url(first) + "/v1/messages",
                data=with_message_id(sample_formd, message_id),
                headers={"Content-Type": "application/xml"},
            ) as response:
                return response.status

        statuses = await asyncio.gather(*(one(i) for i in ids))
    assert set(statuses) == {202}
    await first.stop()
    folder = inbox(first, "TH")
    delivered_by_first = {p.stem for p in folder.glob("*.xml")} if folder.exists() else set()

    second = Gateway(settings)
    await second.start(port=0)
    try:
        for _ in range(200):
            delivered = {p.stem for p in folder.glob("*.xml")} if folder.exists() else set()
            if delivered >= set(ids):
                break
            await asyncio.sleep(0.1)
    finally:
        await second.stop()
        await delete_topology(
            amqp_url, Topology(settings.amqp.prefix), MEMBER_STATES, second.broker.retry_delays_ms
        )
    assert set(ids) - delivered == set(), f"lost {len(set(ids) - delivered)}"
    assert not list(folder.glob(".*.tmp")), "a half-written file was left behind"
    print(f"delivered before the stop: {len(delivered_by_first)}, after: {len(delivered)}")
