"""A delivery receipt and the Customs Response come back to the sender and join the timeline."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.parsing import parse
from gateway.core.receipts import receipt_message_id
from gateway.core.signatures import verify
from tests.conftest import SAMPLES, with_message_id
from tests.integration.helpers import base_url, inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

RESPONSE_SAMPLE = SAMPLES / "response" / "valid" / "th-sg-formd-utilised.xml"


async def _message(session: aiohttp.ClientSession, gateway: Gateway, message_id: str) -> Any:
    async with session.get(f"{base_url(gateway)}/v1/messages/{message_id}") as response:
        return await response.json(content_type=None)


async def _wait_for_state(
    session: aiohttp.ClientSession, gateway: Gateway, message_id: str, state: str
) -> Any:
    view: Any = None
    for _ in range(150):
        view = await _message(session, gateway, message_id)
        if view.get("state") == state:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {state}: {view}")


def _response_to(original_id: str) -> tuple[str, bytes]:
    response_id = str(uuid.uuid4())
    text = RESPONSE_SAMPLE.read_text(encoding="utf-8")
    text = re.sub(
        r"<cm:MessageID>[^<]+</cm:MessageID>", f"<cm:MessageID>{response_id}</cm:MessageID>", text
    )
    text = re.sub(
        r"<cm:ReferencedMessageID>[^<]+</cm:ReferencedMessageID>",
        f"<cm:ReferencedMessageID>{original_id}</cm:ReferencedMessageID>",
        text,
    )
    return response_id, text.encode()


async def test_delivery_receipt_goes_back_signed_by_the_receiving_gateway(
    running_gateway: Gateway, sample_formd: bytes, rsa_pki: PkiBundle
) -> None:
    """After TH receives the Form D, SG receives a receipt signed with TH's gateway key."""
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        status, _, _ = await submit(
            session, running_gateway, with_message_id(sample_formd, message_id)
        )
        assert status == 202
        view = await _wait_for_state(session, running_gateway, message_id, "RECEIPTED")
    receipt_id = receipt_message_id(message_id)
    assert {"message_id": receipt_id, "relation": "receipt"}.items() <= view["related"][0].items()
    receipt_file = inbox(running_gateway, "SG") / f"{receipt_id}.xml"
    assert await wait_for_file(receipt_file)
    verified = verify(parse(receipt_file.read_bytes()), rsa_pki.trust(), now=datetime.now(UTC))
    assert verified.signer.country == "TH"
    assert "Gateway" in verified.signer.subject
    assert [row["state"] for row in view["timeline"]][-2:] == ["DELIVERED", "RECEIPTED"]


async def test_customs_response_is_routed_back_and_linked(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """TH's Customs Response referencing the Form D reaches SG and marks the Form D ANSWERED."""
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, with_message_id(sample_formd, message_id)))[
            0
        ] == 202
        await _wait_for_state(session, running_gateway, message_id, "RECEIPTED")
        response_id, response = _response_to(message_id)
        status, body, _ = await submit(session, running_gateway, response)
        assert status == 202, body
        view = await _wait_for_state(session, running_gateway, message_id, "ANSWERED")
    assert await wait_for_file(inbox(running_gateway, "SG") / f"{response_id}.xml")
    relations = {(r["relation"], r["message_id"]) for r in view["related"]}
    assert ("response", response_id) in relations
    assert ("receipt", receipt_message_id(message_id)) in relations
