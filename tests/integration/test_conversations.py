"""Rejection and clarification (OCP Rules 13, 30), retroactive check (Rule 18) and verification
visit (Rule 19) end to end: a real gateway with an injected clock, RabbitMQ, and simulated NSWs
(real HTTP servers) for the importing side (TH) and the issuing side (SG, which answers)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import SAMPLES, with_message_id
from tests.integration.helpers import base_url, submit
from tests.integration.nsw_pair import Setup

pytestmark = pytest.mark.rabbitmq

REJECTION = SAMPLES / "rejection" / "valid" / "th-sg-formd-items-rejected.xml"
RETRO_REQUEST = SAMPLES / "verification" / "valid" / "th-sg-retroactive-check-request.xml"
VISIT_REQUEST = SAMPLES / "verification" / "valid" / "th-sg-visit-request.xml"
VISIT_RESULT = SAMPLES / "verification" / "valid" / "th-sg-visit-result.xml"
CLARIFICATION = SAMPLES / "clarification" / "valid" / "sg-th-hs-code-explained.xml"


def _step(
    sample: Any, refers_to: str, *, sender: str = "TH", receiver: str = "SG"
) -> tuple[str, bytes]:
    """The sample as a fresh message referring to ``refers_to``, between the given parties."""
    message_id = str(uuid.uuid4())
    text = sample.read_text(encoding="utf-8")
    text = re.sub(r"<cm:MessageID>[^<]+<", f"<cm:MessageID>{message_id}<", text)
    text = re.sub(r"<cm:ReferencedMessageID>[^<]+<", f"<cm:ReferencedMessageID>{refers_to}<", text)
    text = re.sub(
        r"<cm:SenderParty><cm:CountryCode>[A-Z]{2}<",
        f"<cm:SenderParty><cm:CountryCode>{sender}<",
        text,
    )
    text = re.sub(
        r"<cm:ReceiverParty><cm:CountryCode>[A-Z]{2}<",
        f"<cm:ReceiverParty><cm:CountryCode>{receiver}<",
        text,
    )
    return message_id, text.encode()


async def _view(session: aiohttp.ClientSession, gateway: Gateway, message_id: str) -> Any:
    async with session.get(f"{base_url(gateway)}/v1/messages/{message_id}") as response:
        return await response.json(content_type=None)


async def _until(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    message_id: str,
    check: Callable[[Any], bool],
    what: str,
) -> Any:
    view: Any = None
    for _ in range(200):
        view = await _view(session, gateway, message_id)
        if "state" in view and check(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id}: never {what}: {view}")


def _delivered(view: Any) -> bool:
    return view["state"] in {"DELIVERED", "RECEIPTED", "ANSWERED"}


def _related(view: Any, relation: str) -> list[str]:
    return [r["message_id"] for r in view["related"] if r["relation"] == relation]


def _deadlines(view: Any) -> dict[str, str]:
    return {d["name"]: d["status"] for d in view["deadlines"]}


async def _form_d(session: aiohttp.ClientSession, setup: Setup, sample_formd: bytes) -> str:
    formd_id = str(uuid.uuid4())
    status, body, _ = await submit(session, setup.gateway, with_message_id(sample_formd, formd_id))
    assert status == 202, body
    await _until(session, setup.gateway, formd_id, _delivered, "delivered")
    return formd_id


async def test_rejection_is_clarified_and_the_60_day_window_is_tracked(
    nsw_pair: Setup, sample_formd: bytes
) -> None:
    """TH rejects SG's e-Form D with reasons per item; SG's NSW clarifies; the clarification
    is linked to the rejection and reaches TH; the e-Form D's rejection window shows 'used',
    and on a second e-Form D it closes once 61 days pass on the gateway's clock."""
    gateway = nsw_pair.gateway
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        formd = await _view(session, gateway, formd_id)
        assert _deadlines(formd) == {"rejection window": "open"}
        rejection_id, rejection = _step(REJECTION, formd_id)
        status, body, _ = await submit(session, gateway, rejection)
        assert status == 202, body
        answered = await _until(
            session, gateway, rejection_id,
            lambda v: bool(_related(v, "clarification")), "clarified",
        )  # fmt: skip
        (clarification_id,) = _related(answered, "clarification")
        clarification = await _until(
            session, gateway, clarification_id, _delivered, "delivered to TH"
        )
        formd = await _view(session, gateway, formd_id)
        late_id = await _form_d(session, nsw_pair, sample_formd)
        nsw_pair.clock.offset = timedelta(days=61)
        late = await _view(session, gateway, late_id)
    assert _related(formd, "rejection") == [rejection_id]
    assert _deadlines(formd) == {"rejection window": "used"}
    assert clarification["document_type"] == "CLR"
    assert clarification["receiver"] == "TH"
    assert clarification_id in nsw_pair.nsw_th.simulator.received
    assert rejection_id in nsw_pair.nsw_sg.simulator.received
    assert _deadlines(late) == {"rejection window": "closed"}


async def test_clarification_from_anyone_but_the_issuing_side_is_refused(
    nsw_pair: Setup, sample_formd: bytes
) -> None:
    """A clarification of TH's rejection sent by MY (not the party asked): 403."""
    gateway = nsw_pair.gateway
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        rejection_id, rejection = _step(REJECTION, formd_id)
        assert (await submit(session, gateway, rejection))[0] == 202
        _, clarification = _step(CLARIFICATION, rejection_id, sender="MY", receiver="TH")
        status, body, _ = await submit(session, gateway, clarification)
        # And TH rejecting an e-Form D addressed to TH, but sent as if by VN: 403 as well.
        _, stray = _step(REJECTION, formd_id, sender="VN")
        stray_status, stray_body, _ = await submit(session, gateway, stray)
    assert status == 403
    assert body["code"] == "reply-not-allowed"
    assert "Only SG" in body["detail"]
    assert stray_status == 403
    assert stray_body["code"] == "reply-not-allowed"


async def test_retroactive_check_reply_in_time_and_an_overdue_one(
    nsw_pair: Setup, sample_formd: bytes
) -> None:
    """TH asks SG for a retroactive check; SG's NSW replies: the reply is linked and 'met'.
    A second request SG's NSW does not answer (told to reject it) is 'due', then, 91 days
    later on the gateway's clock, 'overdue' while the whole check is still 'due'."""
    gateway = nsw_pair.gateway
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        request_id, request = _step(RETRO_REQUEST, formd_id)
        assert (await submit(session, gateway, request))[0] == 202
        replied = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("reply") == "met", "replied",
        )  # fmt: skip
        (reply_id,) = _related(replied, "retroactive-check-reply")
        reply = await _until(session, gateway, reply_id, _delivered, "delivered to TH")
        # The second request reaches SG's NSW, which does not answer it.
        simulator = nsw_pair.nsw_sg.simulator
        simulator.config = dataclasses.replace(simulator.config, respond_to=None)
        unanswered_id, unanswered = _step(RETRO_REQUEST, formd_id)
        assert (await submit(session, gateway, unanswered))[0] == 202
        waiting = await _until(session, gateway, unanswered_id, _delivered, "delivered to SG")
        nsw_pair.clock.offset = timedelta(days=91)
        overdue = await _view(session, gateway, unanswered_id)
        async with session.get(f"{base_url(gateway)}/v1/deadlines?status=overdue") as listed:
            operators = await listed.json()
    assert _deadlines(replied) == {"reply": "met", "whole check": "met"}
    assert reply["document_type"] == "RCP"
    assert reply["sender"] == "SG"
    assert _deadlines(waiting) == {"reply": "due", "whole check": "due"}
    assert _deadlines(overdue) == {"reply": "overdue", "whole check": "due"}
    overdue_ids = [m["message_id"] for m in operators["messages"]]
    assert unanswered_id in overdue_ids
    assert request_id not in overdue_ids
    due = {d["name"]: d["due_at"] for d in overdue["deadlines"]}
    assert due["reply"] < due["whole check"]


async def test_verification_visit_consent_then_result(nsw_pair: Setup, sample_formd: bytes) -> None:
    """TH asks for a visit; SG's NSW consents (linked, 'met'); the visit's 60 days start at
    the consent; TH's result closes the visit; a result from SG is refused."""
    gateway = nsw_pair.gateway
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        request_id, request = _step(VISIT_REQUEST, formd_id)
        assert (await submit(session, gateway, request))[0] == 202
        consented = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("consent") == "met", "consented",
        )  # fmt: skip
        _, wrong = _step(VISIT_RESULT, request_id, sender="SG", receiver="TH")
        wrong_status, wrong_body, _ = await submit(session, gateway, wrong)
        result_id, result = _step(VISIT_RESULT, request_id)
        assert (await submit(session, gateway, result))[0] == 202
        done = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("visit") == "met", "visited",
        )  # fmt: skip
    assert _deadlines(consented) == {"consent": "met", "visit": "due", "whole visit": "due"}
    assert wrong_status == 403
    assert wrong_body["code"] == "reply-not-allowed"
    assert _related(done, "verification-visit-result") == [result_id]
    assert _deadlines(done) == {"consent": "met", "visit": "met", "whole visit": "met"}
