"""A delivery receipt and the Customs Response come back to the sender and join the timeline."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.parsing import parse
from gateway.core.receipts import receipt_message_id
from gateway.core.signatures import verify
from gateway.core.states import MessageState
from gateway.journal import MessageRecord, open_journal
from gateway.submission import settle_links
from tests.conftest import SAMPLES, with_message_id
from tests.integration.helpers import (
    inbox,
    submit,
    wait_for_file,
    wait_for_state,
)
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

RESPONSE_SAMPLE = SAMPLES / "response" / "valid" / "th-sg-formd-utilised.xml"


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
        view = await wait_for_state(session, running_gateway, message_id, "RECEIPTED")
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
        await wait_for_state(session, running_gateway, message_id, "RECEIPTED")
        response_id, response = _response_to(message_id)
        status, body, _ = await submit(session, running_gateway, response)
        assert status == 202, body
        view = await wait_for_state(session, running_gateway, message_id, "ANSWERED")
    assert await wait_for_file(inbox(running_gateway, "SG") / f"{response_id}.xml")
    relations = {(r["relation"], r["message_id"]) for r in view["related"]}
    assert ("response", response_id) in relations
    assert ("receipt", receipt_message_id(message_id)) in relations


async def test_links_made_before_delivery_are_settled_after_it(tmp_path: Path) -> None:
    """Receipt and answer linked while DELIVERING: DELIVERED, then settle_links -> ANSWERED."""
    journal = await open_journal(f"sqlite://{tmp_path / 'journal.db'}")
    now = datetime.now(UTC)
    original = str(uuid.uuid4())
    try:
        record = MessageRecord(
            message_id=original,
            sender="SG",
            receiver="TH",
            document_type="EFD",
            document_id="SG26-CO-SETTLE1",
            function_code="9",
            referenced_message_id=None,
            test=False,
            size=4,
            digest=hashlib.sha256(b"<a/>").hexdigest(),
            received_at=now,
        )
        await journal.record_accepted(record, b"<a/>", at=now)
        assert (await journal.claim_delivery(original, at=now)).granted
        for relation, state in (("receipt", "RECEIPTED"), ("response", "ANSWERED")):
            assert await journal.link(original, str(uuid.uuid4()), relation, at=now)
            assert not await journal.transition(original, MessageState(state), at=now)
        view = await journal.get(original)
        assert view is not None and view.summary.state is MessageState.DELIVERING
        await journal.mark_delivered(original, at=now)
        await settle_links(journal, original, at=now)
        view = await journal.get(original)
        assert view is not None
        states = [change.state.value for change in view.timeline]
        assert states[-3:] == ["DELIVERED", "RECEIPTED", "ANSWERED"]
    finally:
        await journal.close()
