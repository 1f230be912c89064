"""What a simulated issuing NSW answers to the steps of an origin conversation.

    RejectionNotice          -> Clarification (one explanation per rejected goods item)
    RetroactiveCheckRequest  -> RetroactiveCheckReply (CONFIRMED for every item asked about)
    VerificationVisitRequest -> VerificationVisitConsent (consent, visit in 14 days)
    CertifiedExporterLookupRequest -> CertifiedExporterLookupResponse } from the register
    AEOStatusQuery                 -> AEOStatusResponse              } documents it was given

A register query is answered from the register updates and AEO notifications the simulated NSW
was started with (``register_entries``; none: everything asked is "not in the register"), read
as the gateway reads them (``gateway.core.register_queries``: the same answer either way).

and what a simulated importing NSW decides once a retroactive check is replied to:

    RetroactiveCheckReply    -> OriginDetermination about the request (Rules 18, 19): GRANTED
                                for an item CONFIRMED, DENIED (with the reply's explanation as
                                the reason) for one NOT_CONFIRMED

The answer goes back to the requester, refers to the request in its header and repeats the
number of the e-Form D (or, for a rejection, of the Origin Declaration); it is unsigned (the
gateway signs it on the NSW's behalf where configured, or the simulator signs it with its
response key).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from lxml import etree

from gateway.core.aeo import read_notification
from gateway.core.envelope import (
    NS_COMMON,
    NS_DETERMINATION,
    NS_REJECTION,
    NS_VERIFICATION,
    DocumentType,
    Envelope,
    document_type_of,
)
from gateway.core.parsing import parse
from gateway.core.register_queries import ANSWERS as QUERY_ANSWERS
from gateway.core.register_queries import build_response, read_query
from gateway.core.registers import RegisterEntry, read_update

ANSWERS: Final = {
    DocumentType.REJECTION_NOTICE: DocumentType.CLARIFICATION,
    DocumentType.RETRO_CHECK_REQUEST: DocumentType.RETRO_CHECK_REPLY,
    DocumentType.VISIT_REQUEST: DocumentType.VISIT_CONSENT,
    **QUERY_ANSWERS,
}
"""The requests a simulated issuing NSW answers, and with what."""

DETERMINED: Final = frozenset({DocumentType.RETRO_CHECK_REPLY})
"""The replies after which a simulated importing NSW sends its origin determination."""


def _el(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        node.text = text
    return node


def register_entries(documents: Sequence[bytes]) -> tuple[RegisterEntry, ...]:
    """The register entries of certified-exporter register updates and AEO notifications."""
    entries: list[RegisterEntry] = []
    for n, data in enumerate(documents):
        root = parse(data)
        message_id = f"register-{n}"
        if document_type_of(root) is DocumentType.CE_REGISTER_UPDATE:
            entries.append(read_update(root, message_id=message_id))
        elif document_type_of(root) is DocumentType.AEO_STATUS:
            entries.extend(read_notification(root, message_id=message_id))
        else:
            raise ValueError(f"register document {n} is neither a CER nor an AEO notification")
    return tuple(entries)


def build_answer(
    request: etree._Element,
    envelope: Envelope,
    *,
    now: datetime,
    registers: Sequence[RegisterEntry] = (),
) -> tuple[str, bytes] | None:
    """The answer (message id, bytes) to ``request``, or None for a type not answered;
    ``registers`` are what this NSW knows of its own registers (for register queries)."""
    answer_type = ANSWERS.get(envelope.document_type)
    if answer_type is None:
        return None
    if envelope.document_type in QUERY_ANSWERS:
        query = read_query(request)
        history = [
            e for e in registers if (e.register, e.country) == (query.register, query.country)
        ]
        message_id = str(uuid.uuid4())
        answer = build_response(envelope, query, history, message_id=message_id, created=now)
        return message_id, etree.tostring(answer, xml_declaration=True, encoding="UTF-8")
    ns = NS_REJECTION if answer_type is DocumentType.CLARIFICATION else NS_VERIFICATION
    message_id = str(uuid.uuid4())
    stamp = now.isoformat(timespec="seconds")
    root = _document(
        answer_type, ns, message_id, envelope, refers_to=envelope.message_id, stamp=stamp
    )
    body = _el(root, ns, "Response")
    _el(body, ns, "IssueDateTime", stamp)
    asked = next(iter(request.iterfind(f".//{{{_ns_of(request)}}}Declaration")), None)
    declaration = _el(body, ns, "Declaration")
    _el(declaration, ns, "ID", _child_text(asked, "ID") or "UNKNOWN")
    # A rejection may concern an e-Form D or an Origin Declaration: the clarification repeats
    # which; the checks and visits concern an e-Form D.
    asked_type = _child_text(asked, "TypeCode")
    concerned = "OD" if answer_type is DocumentType.CLARIFICATION and asked_type == "OD" else "EFD"
    _el(declaration, ns, "TypeCode", concerned)
    items = [
        _child_text(item, "SequenceNumeric") or "1"
        for item in request.iterfind(f".//{{{_ns_of(request)}}}GovernmentAgencyGoodsItem")
    ]
    if answer_type is DocumentType.CLARIFICATION:
        what = "Origin Declaration" if concerned == "OD" else "e-Form D"
        _el(body, ns, "Explanation", f"The issuing authority has reviewed the {what}.")
        for seq in items:
            item = _el(body, ns, "GovernmentAgencyGoodsItem")
            _el(item, ns, "SequenceNumeric", seq)
            _el(item, ns, "Explanation", "Confirmed with the exporter's records.")
    elif answer_type is DocumentType.RETRO_CHECK_REPLY:
        for seq in items or ["1"]:
            item = _el(body, ns, "GovernmentAgencyGoodsItem")
            _el(item, ns, "SequenceNumeric", seq)
            _el(item, ns, "ResultCode", "CONFIRMED")
            _el(item, ns, "Explanation", "The exporter's cost statement supports the claim.")
    else:
        _el(body, ns, "ConsentIndicator", "true")
        _el(body, ns, "VisitDate", (now + timedelta(days=14)).date().isoformat())
    return message_id, etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def build_determination(
    reply: etree._Element, envelope: Envelope, *, now: datetime
) -> tuple[str, bytes] | None:
    """The origin determination (message id, bytes) the receiver of the retroactive check reply
    ``reply`` sends about the request it answers, or None for another type or no reference."""
    request_id = envelope.referenced_message_id
    if envelope.document_type not in DETERMINED or request_id is None:
        return None
    ns = NS_DETERMINATION
    message_id = str(uuid.uuid4())
    stamp = now.isoformat(timespec="seconds")
    root = _document(
        DocumentType.ORIGIN_DETERMINATION,
        ns,
        message_id,
        envelope,
        refers_to=request_id,
        stamp=stamp,
    )
    body = _el(root, ns, "Determination")
    _el(body, ns, "IssueDateTime", stamp)
    replied = next(iter(reply.iterfind(f".//{{{NS_VERIFICATION}}}Declaration")), None)
    declaration = _el(body, ns, "Declaration")
    _el(declaration, ns, "ID", _child_text(replied, "ID") or "UNKNOWN")
    _el(declaration, ns, "TypeCode", "EFD")
    _el(body, ns, "ProcedureCode", "RETROACTIVE_CHECK")
    for result in reply.iterfind(f".//{{{NS_VERIFICATION}}}GovernmentAgencyGoodsItem"):
        item = _el(body, ns, "GovernmentAgencyGoodsItem")
        _el(item, ns, "SequenceNumeric", _child_text(result, "SequenceNumeric") or "1")
        if _child_text(result, "ResultCode") == "CONFIRMED":
            _el(item, ns, "DecisionCode", "GRANTED")
            continue
        _el(item, ns, "DecisionCode", "DENIED")
        reason = _el(item, ns, "Reason")
        _el(reason, ns, "ValidationCode", "NOTCONF")
        explained = _child_text(result, "Explanation") or "The origin was not confirmed."
        _el(reason, ns, "Description", explained[:512])
    return message_id, etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _document(
    doc: DocumentType, ns: str, message_id: str, answered: Envelope, *, refers_to: str, stamp: str
) -> etree._Element:
    """A new ``doc`` with its header: from ``answered``'s receiver back to its sender."""
    root = etree.Element(doc.root_tag, nsmap={"cm": NS_COMMON, "x": ns})
    header = _el(root, NS_COMMON, "MessageHeader")
    _el(header, NS_COMMON, "MessageID", message_id)
    sender = _el(header, NS_COMMON, "SenderParty")
    _el(sender, NS_COMMON, "CountryCode", answered.receiver.country)
    receiver = _el(header, NS_COMMON, "ReceiverParty")
    _el(receiver, NS_COMMON, "CountryCode", answered.sender.country)
    _el(header, NS_COMMON, "DocumentTypeCode", doc.value)
    _el(header, NS_COMMON, "FunctionCode", "9")
    _el(header, NS_COMMON, "CreationDateTime", stamp)
    _el(header, NS_COMMON, "ReferencedMessageID", refers_to)
    return root


def _ns_of(root: etree._Element) -> str:
    return etree.QName(root).namespace or ""


def _child_text(parent: etree._Element | None, name: str) -> str | None:
    if parent is None:
        return None
    node = parent.find(f"{{*}}{name}")
    return (node.text or "").strip() or None if node is not None else None
