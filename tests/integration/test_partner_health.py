"""Partner health from delivery outcomes, against a real gateway and broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import make_settings, with_message_id
from tests.integration.helpers import base_url, inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq


async def _get(gateway: Gateway, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(gateway) + path) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def _partner(gateway: Gateway, country: str) -> dict[str, Any]:
    body = await _get(gateway, "/v1/partners?window_minutes=30")
    assert body["as_of"]
    return next(p for p in body["partners"] if p["country"] == country)


async def _state(gateway: Gateway, message_id: str) -> str:
    return str((await _get(gateway, f"/v1/messages/{message_id}"))["state"])


async def test_a_partner_refusing_everything_is_not_healthy_until_deliveries_succeed(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """TH's folder refuses every attempt: failing, with last error; after a delivery: better."""
    gateway = running_gateway
    folder = inbox(gateway, "TH")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("blocked: a file where the folder should be")
    assert (await _partner(gateway, "TH"))["status"] == "unreachable"  # before any traffic
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        answer = await submit(session, gateway, with_message_id(sample_formd, message_id))
    assert answer[0] == 202
    for _ in range(150):
        if await _state(gateway, message_id) == "DEAD":
            break
        await asyncio.sleep(0.1)
    th = await _partner(gateway, "TH")
    assert (th["healthy"], th["status"], th["success_rate"]) == (False, "failing", 0.0)
    assert th["failed"] >= 1 and th["delivered"] == 0
    assert th["last_error"]["code"] and th["failing_since"] is not None
    assert th["last_success"] is None
    assert (await _partner(gateway, "MY"))["healthy"] is True  # no traffic, adapter fine: idle

    folder.unlink()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base_url(gateway) + f"/v1/dead-letters/{message_id}/replay",
            json={"reason": "folder repaired", "operator": "ops"},
        ) as response,
    ):
        assert response.status == 202
    assert await wait_for_file(folder / f"{message_id}.xml")
    for _ in range(50):
        th = await _partner(gateway, "TH")
        if th["delivered"]:
            break
        await asyncio.sleep(0.1)
    assert th["delivered"] == 1 and th["last_success"] is not None
    assert th["failing_since"] is None
    assert th["status"] in ("degraded", "healthy")


async def test_no_partner_is_healthy_while_the_broker_is_down(
    tmp_path: Path, rsa_pki: PkiBundle
) -> None:
    """A gateway whose broker cannot be reached reports every partner broker-down."""
    closed_port = "amqp://guest:guest@127.0.0.1:1/"
    settings = make_settings(
        tmp_path, closed_port, f"test-{uuid.uuid4().hex[:8]}", rsa_pki.directory
    )
    gateway = Gateway(settings)
    await gateway.start(port=0)
    try:
        body = await _get(gateway, "/v1/partners")
        assert len(body["partners"]) == 10
        assert {(p["healthy"], p["status"]) for p in body["partners"]} == {(False, "broker-down")}
        assert all(p["queue_depth"] is None for p in body["partners"])
    finally:
        await gateway.stop()
