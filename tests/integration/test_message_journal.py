"""Idempotent submission, business-key conflicts and the message timeline, end to end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import base_url, inbox, submit, wait_for_file

pytestmark = pytest.mark.rabbitmq


async def _get(
    session: aiohttp.ClientSession, gateway: Gateway, path: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(base_url(gateway) + path) as response:
        return response.status, await response.json(content_type=None)


async def _wait_state(
    session: aiohttp.ClientSession, gateway: Gateway, message_id: str, state: str
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(100):
        status, body = await _get(session, gateway, f"/v1/messages/{message_id}")
        if status == 200 and body["state"] == state:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {state}: {body}")


async def test_same_message_twice_returns_the_first_answer_and_delivers_once(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Resubmitting a message id answers 202 again, marked resubmitted, with one delivery."""
    message_id = str(uuid.uuid4())
    document = with_message_id(sample_formd, message_id)
    async with aiohttp.ClientSession() as session:
        first_status, first, _ = await submit(session, running_gateway, document)
        await _wait_state(session, running_gateway, message_id, "RECEIPTED")
        again_status, again, _ = await submit(session, running_gateway, document)
        view = await _wait_state(session, running_gateway, message_id, "RECEIPTED")
    assert (first_status, again_status) == (202, 202)
    assert first["resubmitted"] is False
    assert again["resubmitted"] is True
    assert again["status"] == "RECEIPTED"
    states = [row["state"] for row in view["timeline"]]
    # QUEUED is absent when the worker claims the message before ingest records QUEUED.
    assert [s for s in states if s != "QUEUED"] == [
        "RECEIVED",
        "ACCEPTED",
        "DELIVERING",
        "DELIVERED",
        "RECEIPTED",
    ]
    assert view["attempts"] == 1
    assert [p.name for p in inbox(running_gateway, "TH").iterdir()] == [f"{message_id}.xml"]


async def test_same_certificate_under_a_new_message_id_is_409_naming_the_original(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """The same Form D number from the same sender under a new message id is refused."""
    original = with_message_id(sample_formd)
    original_id = original.split(b"<cm:MessageID>")[1].split(b"<")[0].decode()
    copy = original.replace(original_id.encode(), str(uuid.uuid4()).encode())
    async with aiohttp.ClientSession() as session:
        status, _, _ = await submit(session, running_gateway, original)
        assert status == 202
        status, problem, content_type = await submit(session, running_gateway, copy)
    assert status == 409
    assert content_type == "application/problem+json"
    assert problem["code"] == "duplicate-business-key"
    assert problem["original_message_id"] == original_id
    assert original_id in problem["detail"]


async def test_a_replacement_of_a_certificate_is_accepted(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A replacement (function code 5) referencing the original is its own message."""
    original = with_message_id(sample_formd)
    original_id = original.split(b"<cm:MessageID>")[1].split(b"<")[0].decode()
    replacement_id = str(uuid.uuid4())
    replacement = (
        original.replace(original_id.encode(), replacement_id.encode())
        .replace(b"<cm:FunctionCode>9<", b"<cm:FunctionCode>5<")
        .replace(
            b"</cm:CreationDateTime>",
            b"</cm:CreationDateTime><cm:ReferencedMessageID>"
            + original_id.encode()
            + b"</cm:ReferencedMessageID>",
        )
    )
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, original))[0] == 202
        status, body, _ = await submit(session, running_gateway, replacement)
    assert status == 202, body
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{replacement_id}.xml")


async def test_a_different_document_under_a_used_message_id_is_refused(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Reusing a message id for another document is message-id-reused, not a resubmission."""
    message_id = str(uuid.uuid4())
    first = with_message_id(sample_formd, message_id)
    second = first.replace(b"Ball bearings", b"Roller bearings")
    assert second != first
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, first))[0] == 202
        status, problem, _ = await submit(session, running_gateway, second)
    assert status == 409
    assert problem["code"] == "message-id-reused"


async def test_unknown_message_is_a_404_problem(running_gateway: Gateway) -> None:
    """GET of a message id the gateway never saw is a not-found problem."""
    async with aiohttp.ClientSession() as session:
        status, body = await _get(session, running_gateway, f"/v1/messages/{uuid.uuid4()}")
        list_status, listing = await _get(session, running_gateway, "/v1/messages?limit=5")
    assert status == 404
    assert body["code"] == "not-found"
    assert list_status == 200
    assert listing["messages"] == []
