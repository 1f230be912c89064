"""Register lookups (issue 18 §4-5): a certified-exporter lookup and an AEO status query, what
the register answers to them, and whether the gateway answers itself or forwards the query.

    importing customs --CertifiedExporterLookupRequest (CEQ)--> exporting Member State
    exporting Member State --CertifiedExporterLookupResponse (CEP)--> importing customs
    importing customs --AEOStatusQuery (AEQ)--> issuing customs (MRA partners only)
    issuing customs --AEOStatusResponse (AEP)--> importing customs

A response goes only from the party asked to the party that asked
(``gateway.core.conversations``: ``reply-not-allowed`` otherwise).

The decision is pure (``decide_query``), like a re-transmission the gateway serves from its
journal (``gateway.core.retransmission``): where the gateway keeps the register of the country
asked (it has entries for it, from that country's register updates or AEO notifications), may
sign as that country's gateway (it holds the country's gateway key, the one that signs its
delivery receipts) and is configured to answer (``documents.answer_register_queries``), it
answers itself (``AnswerHere``) from the register as it stood on the day asked: the response is a
real document, built here, signed and journalled, delivered through the same queue and adapters,
and linked to the query. Otherwise the query is routed to the issuing side (``Forward``) and its
answer linked when it comes back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from lxml import etree

from gateway.core.aeo import AEO_REGISTER, aeo_on
from gateway.core.envelope import (
    NS_AEO_QUERY,
    NS_CE_LOOKUP,
    NS_COMMON,
    DocumentType,
    Envelope,
    FunctionCode,
)
from gateway.core.envelope import first_child as child
from gateway.core.registers import (
    ACTIVE,
    CERTIFIED_EXPORTERS,
    RegisterEntry,
    Standing,
    required,
    same_name,
    standing_on,
)

RELATION_CE_LOOKUP: Final = "ce-lookup-response"
"""Link relation: the CE lookup response is the ``ce-lookup-response`` of the request."""
RELATION_AEO_QUERY: Final = "aeo-status-response"
"""Link relation: the AEO status response is the ``aeo-status-response`` of the query."""

ANSWERS: Final = {
    DocumentType.CE_LOOKUP_REQUEST: DocumentType.CE_LOOKUP_RESPONSE,
    DocumentType.AEO_STATUS_QUERY: DocumentType.AEO_STATUS_RESPONSE,
}
"""Each register query and the response that answers it."""

EXPORTER, AUTHORISATION, PRODUCT, SIGNATORY = "EXPORTER", "AUTHORISATION", "PRODUCT", "SIGNATORY"
MATCH, NO_MATCH = "MATCH", "NO_MATCH"

_ANSWER_NAMESPACE = uuid.UUID("5b0f0a43-6b36-4f55-9d3e-7f6a0e1c2d18")


def _cl(name: str) -> str:
    return f"{{{NS_CE_LOOKUP}}}{name}"


def _aq(name: str) -> str:
    return f"{{{NS_AEO_QUERY}}}{name}"


def _text(el: etree._Element | None) -> str:
    return "" if el is None or el.text is None else " ".join(el.text.split())


# --- the queries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CeLookup:
    """What a certified-exporter lookup asks: one authorisation on one day, and optionally
    HS/AHTN codes and a signatory."""

    query_id: str
    country: str
    authorisation_id: str
    day: date
    codes: tuple[str, ...]
    signatory: str | None

    @property
    def register(self) -> str:
        """The register asked: the certified-exporter register."""
        return CERTIFIED_EXPORTERS


@dataclass(frozen=True, slots=True, kw_only=True)
class AeoQuery:
    """What an AEO status query asks: one AEO id of one issuing country on one day."""

    query_id: str
    country: str
    aeo_id: str
    day: date

    @property
    def register(self) -> str:
        """The register asked: the AEO register."""
        return AEO_REGISTER


def read_query(root: etree._Element) -> CeLookup | AeoQuery:
    """The question an XSD-valid lookup request or AEO status query asks."""
    if root.tag == DocumentType.CE_LOOKUP_REQUEST.root_tag:
        query = required(child(root, _cl("Query")), "Query")
        return CeLookup(
            query_id=_text(child(query, _cl("ID"))),
            country=_text(child(query, _cl("ExportCountryCode"))),
            authorisation_id=_text(child(query, _cl("AuthorisationID"))),
            day=date.fromisoformat(_text(child(query, _cl("DeclarationDate")))),
            codes=tuple(
                _text(child(c, _cl("ID"))) for c in query.iterchildren(_cl("Classification"))
            ),
            signatory=_text(child(query, _cl("SignatoryName"))) or None,
        )
    query = required(child(root, _aq("Query")), "Query")
    return AeoQuery(
        query_id=_text(child(query, _aq("ID"))),
        country=_text(child(query, _aq("IssuingCountryCode"))),
        aeo_id=_text(child(query, _aq("AEOID"))),
        day=date.fromisoformat(_text(child(query, _aq("QueryDate")))),
    )


# --- answer here or forward ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerHere:
    """The gateway keeps the register asked: answer from it, signed as ``country``'s gateway."""

    country: str
    register: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Route the query to the issuing side; ``reason`` says why the gateway does not answer."""

    reason: str


def decide_query(
    query: CeLookup | AeoQuery, *, register_held: bool, can_sign: bool, answer_here: bool
) -> AnswerHere | Forward:
    """Answer ``query`` here or forward it.

    ``register_held``: the journal has entries of the asked country's register;
    ``can_sign``: the gateway holds that country's gateway key; ``answer_here``: the setting
    ``documents.answer_register_queries``.
    """
    if not answer_here:
        return Forward(reason="configured to forward register queries")
    if not register_held:
        return Forward(reason=f"no {query.register} register of {query.country} is kept here")
    if not can_sign:
        return Forward(reason=f"no gateway key of {query.country} to sign an answer with")
    return AnswerHere(country=query.country, register=query.register)


def answer_message_id(query_message_id: str) -> str:
    """The message id of the gateway's answer to a query (stable: answering again is a no-op)."""
    return str(uuid.uuid5(_ANSWER_NAMESPACE, f"answer:{query_message_id.lower()}"))


# --- what the register says ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One element of a CE lookup and whether the register agrees."""

    element: str
    value: str | None
    matched: bool
    reason: str | None = None


def ce_lookup_matches(
    query: CeLookup, history: Sequence[RegisterEntry]
) -> tuple[Standing | None, tuple[Match, ...]]:
    """The authorisation's standing on the day asked and a match result per element asked.

    The same reading as the Origin Declaration check (``registers.declaration_findings``):
    exporter registered; authorisation active and within its dates; each HS/AHTN code covered
    by an authorised product; the signatory among the registered ones (names compared as an
    officer would). An exporter not registered answers NO_MATCH for every element.
    """
    code, day = query.authorisation_id, query.day.isoformat()
    standing = standing_on(history, code, query.day)
    asked = [(PRODUCT, c) for c in query.codes]
    if query.signatory is not None:
        asked.append((SIGNATORY, query.signatory))
    if standing is None:
        reason = f"{code} is not in {query.country}'s certified-exporter register on {day}."
        return None, (
            Match(element=EXPORTER, value=None, matched=False, reason=reason),
            Match(element=AUTHORISATION, value=None, matched=False, reason=reason),
            *(Match(element=e, value=v, matched=False, reason=reason) for e, v in asked),
        )
    record = standing.record
    found = [Match(element=EXPORTER, value=None, matched=True)]
    if standing.valid_on(query.day):
        found.append(Match(element=AUTHORISATION, value=None, matched=True))
    else:
        if standing.status != ACTIVE:
            why = f"{standing.status} since {standing.since.isoformat()}"
        elif query.day < record.issue_date:
            why = f"not issued until {record.issue_date.isoformat()}"
        else:
            why = f"expired on {record.expiry_date.isoformat()}"
        found.append(
            Match(
                element=AUTHORISATION,
                value=None,
                matched=False,
                reason=f"{code} was {why}, so not valid on {day}.",
            )
        )
    for element, value in asked:
        if element == PRODUCT:
            ok = any(p.covers(value) for p in record.products)
            why = f"{value} is not among the authorised products of {code} on {day}."
        else:
            ok = any(same_name(value, s) for s in record.signatories)
            why = f"'{value}' is not a registered signatory of {code} on {day}."
        found.append(Match(element=element, value=value, matched=ok, reason=None if ok else why))
    return standing, tuple(found)


# --- the response documents ---------------------------------------------------------------------


def _add(parent: etree._Element, tag: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, tag).text = value


def _response_root(
    envelope: Envelope, answer: DocumentType, *, message_id: str, created: datetime
) -> etree._Element:
    """A response's root and header: from the party asked, to the asker, naming the query."""
    ns = NS_CE_LOOKUP if answer is DocumentType.CE_LOOKUP_RESPONSE else NS_AEO_QUERY
    prefix = "cl" if ns == NS_CE_LOOKUP else "aq"
    root = etree.Element(answer.root_tag, nsmap={prefix: ns, "cm": NS_COMMON})

    def cm(name: str) -> str:
        return f"{{{NS_COMMON}}}{name}"

    header = etree.SubElement(root, cm("MessageHeader"))
    _add(header, cm("MessageID"), message_id)
    for tag, party in (("SenderParty", envelope.receiver), ("ReceiverParty", envelope.sender)):
        node = etree.SubElement(header, cm(tag))
        _add(node, cm("CountryCode"), party.country)
        _add(node, cm("PartyID"), party.party_id)
    _add(header, cm("DocumentTypeCode"), answer.value)
    _add(header, cm("FunctionCode"), FunctionCode.ORIGINAL.value)
    _add(header, cm("CreationDateTime"), created.isoformat(timespec="seconds"))
    _add(header, cm("ReferencedMessageID"), envelope.message_id)
    if envelope.test:
        _add(header, cm("TestIndicator"), "true")
    return root


def build_response(
    envelope: Envelope,
    query: CeLookup | AeoQuery,
    history: Sequence[RegisterEntry],
    *,
    message_id: str,
    created: datetime,
) -> etree._Element:
    """The unsigned response to ``query`` (``envelope``: its header) from ``history``, the asked
    country's register entries in recording order, read as it stood on the day asked."""
    answer = ANSWERS[envelope.document_type]
    root = _response_root(envelope, answer, message_id=message_id, created=created)
    if isinstance(query, CeLookup):
        _ce_lookup_result(root, query, history)
    else:
        _aeo_result(root, query, history)
    return root


def _ce_lookup_result(
    root: etree._Element, query: CeLookup, history: Sequence[RegisterEntry]
) -> None:
    standing, matches = ce_lookup_matches(query, history)
    result = etree.SubElement(root, _cl("Result"))
    _add(result, _cl("QueryID"), query.query_id)
    _add(result, _cl("ExportCountryCode"), query.country)
    _add(result, _cl("AuthorisationID"), query.authorisation_id)
    _add(result, _cl("DeclarationDate"), query.day.isoformat())
    if standing is not None:
        _add(result, _cl("ExporterName"), standing.record.name)
        _add(result, _cl("StandingCode"), standing.status.upper())
        _add(result, _cl("IssueDate"), standing.record.issue_date.isoformat())
        _add(result, _cl("ExpiryDate"), standing.record.expiry_date.isoformat())
    for match in matches:
        node = etree.SubElement(result, _cl("Match"))
        _add(node, _cl("ElementCode"), match.element)
        _add(node, _cl("Value"), match.value)
        _add(node, _cl("MatchCode"), MATCH if match.matched else NO_MATCH)
        _add(node, _cl("Reason"), match.reason)


def _aeo_result(root: etree._Element, query: AeoQuery, history: Sequence[RegisterEntry]) -> None:
    record = aeo_on(history, query.aeo_id, query.day)
    result = etree.SubElement(root, _aq("Result"))
    _add(result, _aq("QueryID"), query.query_id)
    _add(result, _aq("IssuingCountryCode"), query.country)
    _add(result, _aq("AEOID"), query.aeo_id)
    _add(result, _aq("QueryDate"), query.day.isoformat())
    _add(result, _aq("FoundIndicator"), "false" if record is None else "true")
    valid = record is not None and record.valid_on(query.day)
    _add(result, _aq("ValidIndicator"), "true" if valid else "false")
    if record is not None:
        _add(result, _aq("Name"), record.name)
        _add(result, _aq("StatusCode"), record.status)
        _add(result, _aq("ValidFrom"), record.valid_from.isoformat())
        _add(result, _aq("ValidTo"), record.valid_to.isoformat())
        _add(result, _aq("StatusReason"), record.reason)
