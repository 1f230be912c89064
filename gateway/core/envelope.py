"""The message header every document type shares, and how to read it.

The header is the only part of a document that routing, the journal and the delivery side look
at. It is defined once in ``xsd/common`` and sits as the first child of every document's root:

    <cm:MessageHeader>
      <cm:MessageID>uuid</cm:MessageID>
      <cm:SenderParty><cm:CountryCode>SG</cm:CountryCode><cm:PartyID>..</cm:PartyID>?</cm:SenderParty>
      <cm:ReceiverParty><cm:CountryCode>TH</cm:CountryCode>..</cm:ReceiverParty>
      <cm:DocumentTypeCode>EFD</cm:DocumentTypeCode>
      <cm:FunctionCode>9</cm:FunctionCode>
      <cm:CreationDateTime>2026-11-22T07:00:00Z</cm:CreationDateTime>
      <cm:ReferencedMessageID>uuid</cm:ReferencedMessageID>?
      <cm:TestIndicator>false</cm:TestIndicator>?
    </cm:MessageHeader>
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.errors import HeaderInvalid, UnknownDocumentType

NS_COMMON = "urn:asw-gw:datamodel:Common_DS:1"
NS_FORMD = "urn:asw-gw:datamodel:EFORMD-DMS:1"
NS_ACDD = "urn:asw-gw:datamodel:ACDD-DMS:1"
NS_RESPONSE = "urn:asw-gw:datamodel:RES-DMS:1"
NS_RECEIPT = "urn:asw-gw:datamodel:RCT-DMS:1"
NS_RETRANSMISSION = "urn:asw-gw:datamodel:RTR-DMS:1"
NS_REJECTION = "urn:asw-gw:datamodel:REJ-DMS:1"
NS_VERIFICATION = "urn:asw-gw:datamodel:VER-DMS:1"
NS_DETERMINATION = "urn:asw-gw:datamodel:ODT-DMS:1"
NS_CE_REGISTER = "urn:asw-gw:datamodel:CEREG-DMS:1"
NS_ORIGIN_DECLARATION = "urn:asw-gw:datamodel:ODECL-DMS:1"
NS_AEO_STATUS = "urn:asw-gw:datamodel:AEOSTAT-DMS:1"
NS_CE_LOOKUP = "urn:asw-gw:datamodel:CELOOKUP-DMS:1"
NS_AEO_QUERY = "urn:asw-gw:datamodel:AEOQUERY-DMS:1"
NS_DSIG = "http://www.w3.org/2000/09/xmldsig#"

MEMBER_STATES = ("BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN")


class DocumentType(enum.Enum):
    """The document types the gateway exchanges; the value is the header's DocumentTypeCode."""

    FORM_D = "EFD"
    ACDD = "ACDD"
    CUSTOMS_RESPONSE = "RES"
    DELIVERY_RECEIPT = "RCT"
    RETRANSMISSION_REQUEST = "RTR"
    REJECTION_NOTICE = "REJ"
    CLARIFICATION = "CLR"
    RETRO_CHECK_REQUEST = "RCQ"
    RETRO_CHECK_REPLY = "RCP"
    VISIT_REQUEST = "VVQ"
    VISIT_CONSENT = "VVC"
    VISIT_RESULT = "VVR"
    ORIGIN_DETERMINATION = "ODT"
    CE_REGISTER_UPDATE = "CER"
    ORIGIN_DECLARATION = "OD"
    AEO_STATUS = "AEO"
    CE_LOOKUP_REQUEST = "CEQ"
    CE_LOOKUP_RESPONSE = "CEP"
    AEO_STATUS_QUERY = "AEQ"
    AEO_STATUS_RESPONSE = "AEP"

    @property
    def root_tag(self) -> str:
        """The qualified tag of this document type's root element."""
        return _ROOT_TAGS[self]

    @property
    def slug(self) -> str:
        """Short lower-case name, used in routing keys and file names."""
        return _SLUGS[self]


_ROOT_TAGS = {
    DocumentType.FORM_D: f"{{{NS_FORMD}}}EFormD",
    DocumentType.ACDD: f"{{{NS_ACDD}}}ACDD",
    DocumentType.CUSTOMS_RESPONSE: f"{{{NS_RESPONSE}}}CustomsResponse",
    DocumentType.DELIVERY_RECEIPT: f"{{{NS_RECEIPT}}}DeliveryReceipt",
    DocumentType.RETRANSMISSION_REQUEST: f"{{{NS_RETRANSMISSION}}}RetransmissionRequest",
    DocumentType.REJECTION_NOTICE: f"{{{NS_REJECTION}}}RejectionNotice",
    DocumentType.CLARIFICATION: f"{{{NS_REJECTION}}}Clarification",
    DocumentType.RETRO_CHECK_REQUEST: f"{{{NS_VERIFICATION}}}RetroactiveCheckRequest",
    DocumentType.RETRO_CHECK_REPLY: f"{{{NS_VERIFICATION}}}RetroactiveCheckReply",
    DocumentType.VISIT_REQUEST: f"{{{NS_VERIFICATION}}}VerificationVisitRequest",
    DocumentType.VISIT_CONSENT: f"{{{NS_VERIFICATION}}}VerificationVisitConsent",
    DocumentType.VISIT_RESULT: f"{{{NS_VERIFICATION}}}VerificationVisitResult",
    DocumentType.ORIGIN_DETERMINATION: f"{{{NS_DETERMINATION}}}OriginDetermination",
    DocumentType.CE_REGISTER_UPDATE: f"{{{NS_CE_REGISTER}}}CertifiedExporterRegisterUpdate",
    DocumentType.ORIGIN_DECLARATION: f"{{{NS_ORIGIN_DECLARATION}}}OriginDeclaration",
    DocumentType.AEO_STATUS: f"{{{NS_AEO_STATUS}}}AEOStatusNotification",
    DocumentType.CE_LOOKUP_REQUEST: f"{{{NS_CE_LOOKUP}}}CertifiedExporterLookupRequest",
    DocumentType.CE_LOOKUP_RESPONSE: f"{{{NS_CE_LOOKUP}}}CertifiedExporterLookupResponse",
    DocumentType.AEO_STATUS_QUERY: f"{{{NS_AEO_QUERY}}}AEOStatusQuery",
    DocumentType.AEO_STATUS_RESPONSE: f"{{{NS_AEO_QUERY}}}AEOStatusResponse",
}
_SLUGS = {
    DocumentType.FORM_D: "formd",
    DocumentType.ACDD: "acdd",
    DocumentType.CUSTOMS_RESPONSE: "response",
    DocumentType.DELIVERY_RECEIPT: "receipt",
    DocumentType.RETRANSMISSION_REQUEST: "retransmission",
    DocumentType.REJECTION_NOTICE: "rejection",
    DocumentType.CLARIFICATION: "clarification",
    DocumentType.RETRO_CHECK_REQUEST: "retro-check-request",
    DocumentType.RETRO_CHECK_REPLY: "retro-check-reply",
    DocumentType.VISIT_REQUEST: "visit-request",
    DocumentType.VISIT_CONSENT: "visit-consent",
    DocumentType.VISIT_RESULT: "visit-result",
    DocumentType.ORIGIN_DETERMINATION: "origin-determination",
    DocumentType.CE_REGISTER_UPDATE: "ce-register",
    DocumentType.ORIGIN_DECLARATION: "origin-declaration",
    DocumentType.AEO_STATUS: "aeo-status",
    DocumentType.CE_LOOKUP_REQUEST: "ce-lookup-request",
    DocumentType.CE_LOOKUP_RESPONSE: "ce-lookup-response",
    DocumentType.AEO_STATUS_QUERY: "aeo-status-query",
    DocumentType.AEO_STATUS_RESPONSE: "aeo-status-response",
}
_BY_ROOT_TAG = {tag: doc_type for doc_type, tag in _ROOT_TAGS.items()}


class FunctionCode(enum.Enum):
    """UNCL 1225 message function codes the gateway understands."""

    ORIGINAL = "9"
    CANCELLATION = "1"
    REPLACEMENT = "5"


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """A sending or receiving party: a member state, optionally one NSW party inside it."""

    country: str
    party_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What the gateway knows of a message from its header alone."""

    message_id: str
    sender: Party
    receiver: Party
    document_type: DocumentType
    function: FunctionCode
    created: datetime
    referenced_message_id: str | None
    test: bool


def _common_tag(name: str) -> str:
    return f"{{{NS_COMMON}}}{name}"


def document_type_of(root: etree._Element) -> DocumentType:
    """Tell the document type from the root element, or refuse it."""
    doc_type = _BY_ROOT_TAG.get(str(root.tag))
    if doc_type is None:
        known = ", ".join(sorted(t.root_tag for t in DocumentType))
        raise UnknownDocumentType(
            f"The root element {root.tag!s} is not a document type this gateway exchanges "
            f"(expected one of: {known})."
        )
    return doc_type


_HEADER = _common_tag("MessageHeader")


def first_child(el: etree._Element | None, tag: str) -> etree._Element | None:
    """The first child of ``el`` with ``tag`` (Clark notation), or ``None``.

    The same answer as ``next(el.iterchildren(tag), None)``, for a fraction of its cost (most
    of which is building the iterator): comments and processing instructions have a function,
    never a string, as their ``tag``.
    """
    if el is not None:
        for node in el:
            if node.tag == tag:
                return node
    return None


def _first_children(parent: etree._Element) -> dict[object, etree._Element]:
    """The first child of each tag, in one loop over ``parent`` (cheaper than one ElementPath
    ``find`` per field: ``bench/bench_parts.py``)."""
    found: dict[object, etree._Element] = {}
    for node in parent:
        found.setdefault(node.tag, node)
    return found


def full_text(node: etree._Element) -> str:
    """All the text inside ``node``, as the XSD and XPath ``string()`` read it.

    The hardened parser leaves no comment inside a value, but a child element (which the XSD
    refuses later) must not make the header read differently from what the receiver sees
    meanwhile. An element without children (the usual case) costs one attribute read.
    """
    if len(node):
        return "".join(t for t in node.itertext() if isinstance(t, str))
    return node.text or ""


def _text(
    fields: dict[object, etree._Element], name: str, what: str, *, required: bool = True
) -> str | None:
    node = fields.get(_common_tag(name))
    value = full_text(node).strip() if node is not None else ""
    if not value:
        if required:
            raise HeaderInvalid(f"The message header has no {what} ({name}).")
        return None
    return value


def _party(fields: dict[object, etree._Element], name: str, what: str) -> Party:
    node = fields.get(_common_tag(name))
    if node is None:
        raise HeaderInvalid(f"The message header has no {what} ({name}).")
    party = _first_children(node)
    country = _text(party, "CountryCode", f"{what} country code")
    assert country is not None  # noqa: S101  (required=True returns a value or raises)
    return Party(country=country, party_id=_text(party, "PartyID", "party id", required=False))


def _lower(value: str | None) -> str | None:
    """Message ids are journalled lower-case; a reference in capitals names the same one."""
    return value.lower() if value is not None else None


def read_envelope(root: etree._Element) -> Envelope:
    """Read the header of a parsed document.

    Only structure is checked here; the XSD has the last word on formats. This is enough for
    routing even before schema validation, and it never trusts anything outside the header.
    """
    doc_type = document_type_of(root)
    header_el = first_child(root, _HEADER)  # the XSD puts it first; any position is found
    if header_el is None:
        raise HeaderInvalid("The document has no MessageHeader.")
    header = _first_children(header_el)
    message_id = _text(header, "MessageID", "message id")
    assert message_id is not None  # noqa: S101
    try:
        uuid.UUID(message_id)
    except ValueError as exc:
        raise HeaderInvalid(f"The message id {message_id!r} is not a UUID.") from exc
    declared = _text(header, "DocumentTypeCode", "document type code")
    if declared != doc_type.value:
        raise HeaderInvalid(
            f"The header says document type {declared!r} but the document is {doc_type.value!r}."
        )
    function_text = _text(header, "FunctionCode", "function code")
    try:
        function = FunctionCode(function_text)
    except ValueError as exc:
        raise HeaderInvalid(
            f"The function code {function_text!r} is not one of 9 (original), "
            "1 (cancellation) or 5 (replacement)."
        ) from exc
    created_text = _text(header, "CreationDateTime", "creation date-time")
    assert created_text is not None  # noqa: S101
    try:
        created = datetime.fromisoformat(created_text)
    except ValueError as exc:
        raise HeaderInvalid(f"The creation date-time {created_text!r} is not valid.") from exc
    # A missing time zone is left to the schema, which reports it with path and line.
    test_text = _text(header, "TestIndicator", "test indicator", required=False)
    return Envelope(
        message_id=message_id.lower(),
        sender=_party(header, "SenderParty", "sender"),
        receiver=_party(header, "ReceiverParty", "receiver"),
        document_type=doc_type,
        function=function,
        created=created,
        referenced_message_id=_lower(
            _text(header, "ReferencedMessageID", "referenced message id", required=False)
        ),
        test=test_text in {"true", "1"},
    )
