"""Rules for the steps of the origin conversations: rejection and clarification (OCP Rules
13(3)-(4), 30), retroactive check (Rule 18), verification visit (Rule 19) and the origin
determination that ends either.

``conversation_rules`` check the document itself. ``followed_rules`` check it against the
message it follows, as journalled (a rejection's TypeCode against the rejected message's type;
a determination's procedure, e-Form D and items against its request): the submission path runs
them when that message is known here. Who may send a step (the party asked) is decided at
submission (``gateway.core.conversations``); whether it came in time is tracked from the journal
(``gateway.core.deadlines``), not refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Final

from lxml import etree

from gateway.core.conversations import REJECTION_DAYS
from gateway.core.envelope import NS_DETERMINATION, NS_REJECTION, NS_VERIFICATION
from gateway.core.envelope import DocumentType as Doc
from gateway.core.rule_catalogue import (
    CLARIFICATION_EMPTY,
    DETERMINATION_DECLARATION_MISMATCH,
    DETERMINATION_ITEM_NOT_REQUESTED,
    DETERMINATION_ITEM_REPEATED,
    DETERMINATION_ITEM_UNDECIDED,
    DETERMINATION_PROCEDURE_MISMATCH,
    DETERMINATION_REASON_MISSING,
    RECEIPT_AFTER_REJECTION,
    REFUSAL_EXPLANATION_MISSING,
    REJECTION_AFTER_60_DAYS,
    REJECTION_TYPE_MISMATCH,
    REJECTION_WITHOUT_REASONS,
    RESULT_EXPLANATION_MISSING,
    VERIFICATION_REASON_MISSING,
    VISIT_DATE_IN_FUTURE,
    VISIT_DATE_MISSING,
)
from gateway.core.rules.common import clark_path, future_datetime, parse_datetime, text
from gateway.errors import Finding

_BODY: Final = {
    Doc.REJECTION_NOTICE: clark_path(NS_REJECTION, "Rejection"),
    Doc.CLARIFICATION: clark_path(NS_REJECTION, "Response"),
    Doc.RETRO_CHECK_REQUEST: clark_path(NS_VERIFICATION, "Request"),
    Doc.RETRO_CHECK_REPLY: clark_path(NS_VERIFICATION, "Response"),
    Doc.VISIT_REQUEST: clark_path(NS_VERIFICATION, "Request"),
    Doc.VISIT_CONSENT: clark_path(NS_VERIFICATION, "Response"),
    Doc.VISIT_RESULT: clark_path(NS_VERIFICATION, "Response"),
    Doc.ORIGIN_DETERMINATION: clark_path(NS_DETERMINATION, "Determination"),
}
_NS: Final = {
    Doc.REJECTION_NOTICE: NS_REJECTION,
    Doc.CLARIFICATION: NS_REJECTION,
    Doc.ORIGIN_DETERMINATION: NS_DETERMINATION,
}
FOLLOWED_STEPS: Final = frozenset({Doc.REJECTION_NOTICE, Doc.ORIGIN_DETERMINATION})
"""The steps ``followed_rules`` has rules for."""
_PROCEDURES: Final = {
    Doc.RETRO_CHECK_REQUEST.value: "RETROACTIVE_CHECK",
    Doc.VISIT_REQUEST.value: "VERIFICATION_VISIT",
}
"""The ProcedureCode of a determination that follows a request of each type."""


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def conversation_rules(root: etree._Element, doc: Doc, now: datetime) -> Iterator[Finding]:
    """Every rule of the conversation step ``doc`` over an XSD-valid ``root``."""
    body = root.find(_BODY[doc])
    assert body is not None  # noqa: S101
    ns = _NS.get(doc, NS_VERIFICATION)
    issued = body.find(_tag(ns, "IssueDateTime"))
    yield from future_datetime(issued, "issue date-time", now)
    if doc is Doc.REJECTION_NOTICE:
        yield from _rejection(body, issued)
    elif doc is Doc.CLARIFICATION:
        yield from _clarification(body)
    elif doc in (Doc.RETRO_CHECK_REQUEST, Doc.VISIT_REQUEST):
        yield from _request(body)
    elif doc is Doc.VISIT_CONSENT:
        yield from _consent(body)
    elif doc is Doc.ORIGIN_DETERMINATION:
        yield from _determination(body)
    else:
        yield from _results(body)
        if doc is Doc.VISIT_RESULT:
            visit = body.find(_tag(NS_VERIFICATION, "VisitDate"))
            if visit is not None and text(visit) > now.date().isoformat():
                yield VISIT_DATE_IN_FUTURE.finding(
                    visit,
                    f"the visit date {text(visit)} lies after today ({now.date().isoformat()}).",
                    "Report a visit once it has taken place.",
                )


def _rejection(body: etree._Element, issued: etree._Element | None) -> Iterator[Finding]:
    reason = _tag(NS_REJECTION, "Reason")
    items = body.findall(_tag(NS_REJECTION, "GovernmentAgencyGoodsItem"))
    if body.find(reason) is None and not items:
        yield REJECTION_WITHOUT_REASONS.finding(
            body,
            "the rejection gives no reason.",
            "Give a Reason for the document, or list the rejected goods items with theirs "
            "(Rule 13(3): the rejection states its reasons).",
        )
    received_el = body.find(_tag(NS_REJECTION, "ReceiptDate"))
    type_code = text(body.find(clark_path(NS_REJECTION, "Declaration/TypeCode")))
    what = "Origin Declaration" if type_code == Doc.ORIGIN_DECLARATION.value else "e-Form D"
    issued_at = parse_datetime(text(issued))
    try:
        received = date.fromisoformat(text(received_el))
    except ValueError:
        return
    if issued_at is None:
        return
    issued_on = issued_at.date()
    if received > issued_on:
        yield RECEIPT_AFTER_REJECTION.finding(
            received_el,
            f"the {what} is said to be received on {received.isoformat()}, after the "
            f"rejection was issued ({issued_on.isoformat()}).",
            f"Give the date the importing customs received the {what}.",
        )
    elif issued_on > received + timedelta(days=REJECTION_DAYS):
        days = (issued_on - received).days
        yield REJECTION_AFTER_60_DAYS.finding(
            issued,
            f"the rejection is issued {days} days after the {what} was received "
            f"({received.isoformat()}); Rule 13(3) allows {REJECTION_DAYS}.",
            "A rejection must be returned to the issuing authority within 60 days of receipt.",
        )


def _clarification(body: etree._Element) -> Iterator[Finding]:
    explained = body.find(_tag(NS_REJECTION, "Explanation")) is not None
    if not explained and body.find(_tag(NS_REJECTION, "GovernmentAgencyGoodsItem")) is None:
        yield CLARIFICATION_EMPTY.finding(
            body,
            "the clarification explains nothing.",
            "Give an Explanation for the document or for the goods items rejected.",
        )


def _request(body: etree._Element) -> Iterator[Finding]:
    random = text(body.find(_tag(NS_VERIFICATION, "RandomIndicator"))) in {"true", "1"}
    if not random and body.find(_tag(NS_VERIFICATION, "Reason")) is None:
        yield VERIFICATION_REASON_MISSING.finding(
            body,
            "the request is not at random and gives no reason.",
            "Give the reasons for the request (Rule 18(1)), or set RandomIndicator to true.",
        )


def _consent(body: etree._Element) -> Iterator[Finding]:
    consent = text(body.find(_tag(NS_VERIFICATION, "ConsentIndicator"))) in {"true", "1"}
    if consent and body.find(_tag(NS_VERIFICATION, "VisitDate")) is None:
        yield VISIT_DATE_MISSING.finding(
            body,
            "the visit is consented to but no visit date is given.",
            "Give the agreed VisitDate.",
        )
    if not consent and body.find(_tag(NS_VERIFICATION, "Explanation")) is None:
        yield REFUSAL_EXPLANATION_MISSING.finding(
            body,
            "the visit is refused without an explanation.",
            "Rule 19: without consent the importing side may deny preferential treatment; "
            "say why the visit is refused.",
        )


def _results(body: etree._Element) -> Iterator[Finding]:
    for item in body.findall(_tag(NS_VERIFICATION, "GovernmentAgencyGoodsItem")):
        result = text(item.find(_tag(NS_VERIFICATION, "ResultCode")))
        if result == "NOT_CONFIRMED" and item.find(_tag(NS_VERIFICATION, "Explanation")) is None:
            yield RESULT_EXPLANATION_MISSING.finding(
                item,
                "the origin is NOT_CONFIRMED but no explanation is given.",
                "Explain why the goods item does not qualify as originating.",
                item=text(item.find(_tag(NS_VERIFICATION, "SequenceNumeric"))),
            )


def _determination(body: etree._Element) -> Iterator[Finding]:
    seen: set[str] = set()
    for item in body.findall(_tag(NS_DETERMINATION, "GovernmentAgencyGoodsItem")):
        seq = text(item.find(_tag(NS_DETERMINATION, "SequenceNumeric")))
        if seq in seen:
            yield DETERMINATION_ITEM_REPEATED.finding(
                item,
                f"goods item {seq} is decided more than once.",
                "Give one decision per goods item.",
                item=seq,
            )
        seen.add(seq)
        denied = text(item.find(_tag(NS_DETERMINATION, "DecisionCode"))) == "DENIED"
        if denied and item.find(_tag(NS_DETERMINATION, "Reason")) is None:
            yield DETERMINATION_REASON_MISSING.finding(
                item,
                "preferential tariff treatment is DENIED without a reason.",
                "Give the reason code and text for the denial (Rules 18, 19).",
                item=seq,
            )


def followed_rules(
    root: etree._Element,
    doc: Doc,
    followed_type: str,
    followed: etree._Element | None,
) -> Iterator[Finding]:
    """The rules of step ``doc`` (XSD-valid ``root``) against the message it follows: its
    journalled type ``followed_type`` and, for a determination, its parsed document
    ``followed`` (None: not held, so only the type is checked)."""
    body = root.find(_BODY[doc]) if doc in _BODY else None
    if body is None:
        return
    if doc is Doc.REJECTION_NOTICE:
        code_el = body.find(clark_path(NS_REJECTION, "Declaration/TypeCode"))
        named = text(code_el)
        if followed_type in (Doc.FORM_D.value, Doc.ORIGIN_DECLARATION.value) and (
            named != followed_type
        ):
            yield REJECTION_TYPE_MISMATCH.finding(
                code_el,
                f"the rejection's TypeCode is {named}, but the message it refers to is a "
                f"{followed_type} document.",
                f"Set TypeCode to {followed_type}, or refer to the {named} document rejected.",
            )
    elif doc is Doc.ORIGIN_DETERMINATION:
        yield from _against_request(body, followed_type, followed)


def _against_request(
    body: etree._Element, request_type: str, request: etree._Element | None
) -> Iterator[Finding]:
    procedure_el = body.find(_tag(NS_DETERMINATION, "ProcedureCode"))
    expected = _PROCEDURES.get(request_type)
    if expected is not None and text(procedure_el) != expected:
        yield DETERMINATION_PROCEDURE_MISMATCH.finding(
            procedure_el,
            f"the ProcedureCode is {text(procedure_el)}, but the message it refers to is a "
            f"{request_type} request ({expected}).",
            f"Set ProcedureCode to {expected}.",
        )
    asked = request.find(clark_path(NS_VERIFICATION, "Request")) if request is not None else None
    if asked is None:
        return
    id_el = body.find(clark_path(NS_DETERMINATION, "Declaration/ID"))
    asked_id = text(asked.find(clark_path(NS_VERIFICATION, "Declaration/ID")))
    if text(id_el) != asked_id:
        yield DETERMINATION_DECLARATION_MISMATCH.finding(
            id_el,
            f"the determination is about e-Form D {text(id_el)}, but the request was about "
            f"{asked_id}.",
            "Refer to the request about this e-Form D, or give the request's e-Form D number.",
        )
    requested = [
        text(item.find(_tag(NS_VERIFICATION, "SequenceNumeric")))
        for item in asked.findall(_tag(NS_VERIFICATION, "GovernmentAgencyGoodsItem"))
    ]
    decided: set[str] = set()
    for item in body.findall(_tag(NS_DETERMINATION, "GovernmentAgencyGoodsItem")):
        seq = text(item.find(_tag(NS_DETERMINATION, "SequenceNumeric")))
        decided.add(seq)
        if seq not in requested:
            yield DETERMINATION_ITEM_NOT_REQUESTED.finding(
                item,
                f"goods item {seq} was not among the items of the request "
                f"({', '.join(requested)}).",
                "Decide only the goods items the check or visit concerned.",
                item=seq,
            )
    for seq in requested:
        if seq not in decided:
            yield DETERMINATION_ITEM_UNDECIDED.finding(
                body,
                f"goods item {seq} of the request has no decision.",
                "Give a decision (GRANTED or DENIED) for every goods item the request concerned.",
                item=seq,
            )
