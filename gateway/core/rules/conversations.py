"""Rules for the steps of the origin conversations: rejection and clarification (OCP Rules
13(3)-(4), 30), retroactive check (Rule 18) and verification visit (Rule 19).

What these rules check is the document itself. Who may send it (the party asked) needs the
journal and is decided at submission (``gateway.core.conversations``); whether the answer came
in time is tracked from the journal (``gateway.core.deadlines``), not refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Final

from lxml import etree

from gateway.core.conversations import REJECTION_DAYS
from gateway.core.envelope import NS_REJECTION, NS_VERIFICATION
from gateway.core.envelope import DocumentType as Doc
from gateway.core.rule_catalogue import (
    CLARIFICATION_EMPTY,
    RECEIPT_AFTER_REJECTION,
    REFUSAL_EXPLANATION_MISSING,
    REJECTION_AFTER_60_DAYS,
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
}


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def conversation_rules(root: etree._Element, doc: Doc, now: datetime) -> Iterator[Finding]:
    """Every rule of the conversation step ``doc`` over an XSD-valid ``root``."""
    body = root.find(_BODY[doc])
    assert body is not None  # noqa: S101
    ns = NS_REJECTION if doc in (Doc.REJECTION_NOTICE, Doc.CLARIFICATION) else NS_VERIFICATION
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
