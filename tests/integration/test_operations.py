"""What operators see and do: stats, dead letters and their replay, certificates, partners."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import base_url, inbox, submit, wait_for_file

pytestmark = pytest.mark.rabbitmq


async def _get(session: aiohttp.ClientSession, gateway: Gateway, path: str) -> Any:
    async with session.get(base_url(gateway) + path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _post(
    session: aiohttp.ClientSession, gateway: Gateway, path: str, body: object
) -> tuple[int, Any]:
    async with session.post(base_url(gateway) + path, json=body) as response:
        return response.status, await response.json(content_type=None)


async def _state(session: aiohttp.ClientSession, gateway: Gateway, message_id: str) -> str:
    return str((await _get(session, gateway, f"/v1/messages/{message_id}"))["state"])


async def _wait(
    session: aiohttp.ClientSession, gateway: Gateway, message_id: str, states: set[str]
) -> str:
    for _ in range(150):
        state = await _state(session, gateway, message_id)
        if state in states:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {states}")


async def test_dead_letter_is_listed_and_replayed_after_the_receiver_recovers(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A parked message shows its reason; a replay with reason and operator delivers it."""
    folder = inbox(running_gateway, "TH")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("blocked: a file where the folder should be")
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, with_message_id(sample_formd, message_id)))[
            0
        ] == 202
        await _wait(session, running_gateway, message_id, {"DEAD"})
        parked = (await _get(session, running_gateway, "/v1/dead-letters"))["dead_letters"]
        entry = next(p for p in parked if p["message_id"] == message_id)
        assert entry["reason"] == "retries-exhausted"
        assert "drop folder" in entry["detail"]

        status, problem = await _post(
            session, running_gateway, f"/v1/dead-letters/{message_id}/replay", {"reason": "x"}
        )
        assert (status, problem["code"]) == (422, "replay-reason-required")

        folder.unlink()
        status, replayed = await _post(
            session,
            running_gateway,
            f"/v1/dead-letters/{message_id}/replay",
            {"reason": "TH drop folder repaired", "operator": "ops-alice"},
        )
        assert status == 202, replayed
        assert replayed["replays"] == 1
        assert replayed["parked_copy_removed"] is True
        assert await wait_for_file(folder / f"{message_id}.xml")
        await _wait(session, running_gateway, message_id, {"DELIVERED", "RECEIPTED"})
        view = await _get(session, running_gateway, f"/v1/messages/{message_id}")
        assert any("ops-alice" in (row["detail"] or "") for row in view["timeline"])

        status, problem = await _post(
            session,
            running_gateway,
            f"/v1/dead-letters/{message_id}/replay",
            {"reason": "again", "operator": "ops-alice"},
        )
        assert (status, problem["code"]) == (409, "not-a-dead-letter")
        depths = (await _get(session, running_gateway, "/v1/queues"))["queues"]
        assert depths[f"{running_gateway.settings.amqp.prefix}.dead"] == 0


async def test_stats_document_certificates_and_partners(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Stats count delivered messages per receiver; the stored document and reports are served."""
    message_id = str(uuid.uuid4())
    shutil.rmtree(inbox(running_gateway, "TH"), ignore_errors=True)
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, with_message_id(sample_formd, message_id)))[
            0
        ] == 202
        await _wait(session, running_gateway, message_id, {"RECEIPTED"})
        stats = await _get(session, running_gateway, "/v1/stats")
        assert stats["by_receiver"]["TH"]["RECEIPTED"] == 1
        assert stats["by_state"]["RECEIPTED"] >= 1
        async with session.get(
            f"{base_url(running_gateway)}/v1/messages/{message_id}/document"
        ) as response:
            assert response.content_type == "application/xml"
            assert message_id.encode() in await response.read()
        certs = await _get(session, running_gateway, "/v1/certificates?within_days=3650")
        assert set(certs["countries"]) == {
            "BN",
            "KH",
            "ID",
            "LA",
            "MY",
            "MM",
            "PH",
            "SG",
            "TH",
            "VN",
        }
        assert {e["kind"] for e in certs["expiring"]} == {"ca", "crl"}
        partners = (await _get(session, running_gateway, "/v1/partners"))["partners"]
        assert {p["country"] for p in partners} >= {"SG", "TH"}
        assert all(p["healthy"] for p in partners)
