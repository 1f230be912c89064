"""Rejection and clarification (OCP Rules 13, 30), retroactive check (Rule 18) and verification
visit (Rule 19), each ended by the importing side's origin determination, end to end: a real
gateway with an injected clock, RabbitMQ, and simulated NSWs (real HTTP servers) for the
importing side (TH, which determines) and the issuing side (SG, which answers)."""

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
VISIT_DETERMINATION = SAMPLES / "determination" / "valid" / "th-sg-visit-determination.xml"
CHECK_DETERMINATION = (
    SAMPLES / "determination" / "valid" / "th-sg-retroactive-check-determination.xml"
)


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
    """TH asks SG for a retroactive check; SG's NSW replies: the reply is linked and 'met';
    TH's NSW then sends its origin determination, which meets the whole check (Rule 18).
    A second request SG's NSW does not answer (told to reject it) is 'due', then, 91 days
    later on the gateway's clock, 'overdue' while the whole check is still 'due'."""
    gateway = nsw_pair.gateway
    importing = nsw_pair.nsw_th.simulator
    importing.config = dataclasses.replace(importing.config, determine_to=base_url(gateway))
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        request_id, request = _step(RETRO_REQUEST, formd_id)
        assert (await submit(session, gateway, request))[0] == 202
        replied = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("whole check") == "met", "determined",
        )  # fmt: skip
        (reply_id,) = _related(replied, "retroactive-check-reply")
        (determination_id,) = _related(replied, "origin-determination")
        reply = await _until(session, gateway, reply_id, _delivered, "delivered to TH")
        determination = await _until(
            session, gateway, determination_id, _delivered, "delivered to SG"
        )
        importing.config = dataclasses.replace(importing.config, determine_to=None)
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
    assert determination["document_type"] == "ODT"
    assert (determination["sender"], determination["receiver"]) == ("TH", "SG")
    relations = [s["relation"] for s in replied["related"]]
    assert relations.index("retroactive-check-reply") < relations.index("origin-determination")
    assert _deadlines(waiting) == {"reply": "due", "whole check": "due"}
    assert _deadlines(overdue) == {"reply": "overdue", "whole check": "due"}
    overdue_ids = [m["message_id"] for m in operators["messages"]]
    assert unanswered_id in overdue_ids
    assert request_id not in overdue_ids
    due = {d["name"]: d["due_at"] for d in overdue["deadlines"]}
    assert due["reply"] < due["whole check"]


async def test_verification_visit_consent_then_result(nsw_pair: Setup, sample_formd: bytes) -> None:
    """TH asks for a visit; SG's NSW consents (linked, 'met'); the visit's 60 days start at
    the consent; TH's result meets the visit, TH's determination the whole visit; a result or a
    determination from SG is refused."""
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
        visited = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("visit") == "met", "visited",
        )  # fmt: skip
        _, not_theirs = _step(VISIT_DETERMINATION, request_id, sender="SG", receiver="TH")
        not_theirs_status, not_theirs_body, _ = await submit(session, gateway, not_theirs)
        determination_id, determination = _step(VISIT_DETERMINATION, request_id)
        assert (await submit(session, gateway, determination))[0] == 202
        done = await _until(
            session, gateway, request_id,
            lambda v: _deadlines(v).get("whole visit") == "met", "determined",
        )  # fmt: skip
    assert _deadlines(consented) == {"consent": "met", "visit": "due", "whole visit": "due"}
    assert wrong_status == 403
    assert wrong_body["code"] == "reply-not-allowed"
    assert _related(done, "verification-visit-result") == [result_id]
    assert _deadlines(visited) == {"consent": "met", "visit": "met", "whole visit": "due"}
    assert (not_theirs_status, not_theirs_body["code"]) == (403, "reply-not-allowed")
    assert _related(done, "origin-determination") == [determination_id]
    assert _deadlines(done) == {"consent": "met", "visit": "met", "whole visit": "met"}


async def test_a_determination_or_rejection_that_does_not_match_what_it_follows(
    nsw_pair: Setup, sample_formd: bytes
) -> None:
    """A determination deciding an item the check did not ask about, or one of the wrong
    procedure, and a rejection whose TypeCode is not the rejected message's type are refused
    (422) with the finding's stable code; nothing is linked."""
    gateway = nsw_pair.gateway
    simulator = nsw_pair.nsw_sg.simulator
    simulator.config = dataclasses.replace(simulator.config, respond_to=None)
    async with aiohttp.ClientSession() as session:
        formd_id = await _form_d(session, nsw_pair, sample_formd)
        request_id, request = _step(RETRO_REQUEST, formd_id)
        assert (await submit(session, gateway, request))[0] == 202
        _, extra_item = _step(CHECK_DETERMINATION, request_id)
        extra_item = extra_item.replace(b"<dt:SequenceNumeric>1<", b"<dt:SequenceNumeric>2<")
        extra = await submit(session, gateway, extra_item)
        _, visit_typed = _step(VISIT_DETERMINATION, request_id)
        procedure = await submit(session, gateway, visit_typed)
        _, mistyped = _step(REJECTION, formd_id)
        mistyped = mistyped.replace(b"<rj:TypeCode>EFD<", b"<rj:TypeCode>OD<")
        rejection = await submit(session, gateway, mistyped)
        view = await _view(session, gateway, request_id)
    codes = [sorted(f["code"] for f in body["findings"]) for _, body, _ in (extra, procedure)]
    assert [extra[0], procedure[0], rejection[0]] == [422, 422, 422]
    assert codes == [
        ["determination-item-not-requested", "determination-item-undecided"],
        ["determination-procedure-mismatch"],
    ]
    assert [f["code"] for f in rejection[1]["findings"]] == ["rejection-type-mismatch"]
    assert rejection[1]["code"] == "business-rule-violation"
    assert _related(view, "origin-determination") == []
