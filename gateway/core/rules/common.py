"""What every document type shares: reading the tree, the message header and its rules, and
the exporting/importing country rules (Form D and ACDD).

The readers here are the hot path of every rule: a child is found by a plain loop over the
parent's children (``gateway.core.envelope.first_child``, about 0.3 us) rather than
``iterchildren(tag)`` (about 1.8 us, most of it building the iterator), and the header is read
in one loop over its children.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from lxml import etree

from gateway.core.codelists import (
    CLOCK_SKEW_SECONDS,
    COUNTRIES_IDENTICAL,
    COUNTRY_NOT_MEMBER,
    DATETIME_IN_FUTURE,
    EXPORT_NOT_SENDER,
    FUNCTIONS_NEEDING_REFERENCE,
    IMPORT_NOT_RECEIVER,
    MEMBER_STATE_SET,
    REFERENCE_MISSING,
    REFERENCE_TO_SELF,
    SENDER_IS_RECEIVER,
    Rule,
)
from gateway.core.envelope import NS_COMMON
from gateway.core.envelope import DocumentType as Doc
from gateway.core.envelope import first_child as child
from gateway.errors import Finding

# --- reading the tree -----------------------------------------------------------------------


def q(ns: str, path: str) -> str:
    """Clark notation for a slash-separated ``path`` of local names in namespace ``ns``."""
    return "/".join(f"{{{ns}}}{part}" for part in path.split("/"))


def text(el: etree._Element | None) -> str:
    """The element's own leading text, stripped (``""`` for no element or no text)."""
    return (el.text or "").strip() if el is not None else ""


def parse_datetime(value: str) -> datetime | None:
    """``value`` as a datetime, or ``None`` for a valid xs:dateTime Python cannot represent
    (year 10000, 24:00:00)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- the message header ----------------------------------------------------------------------

_SKEW: Final = timedelta(seconds=CLOCK_SKEW_SECONDS)
_MESSAGE_HEADER: Final = q(NS_COMMON, "MessageHeader")
_MESSAGE_ID: Final = q(NS_COMMON, "MessageID")
_SENDER: Final = q(NS_COMMON, "SenderParty")
_RECEIVER: Final = q(NS_COMMON, "ReceiverParty")
_COUNTRY: Final = q(NS_COMMON, "CountryCode")
_FUNCTION: Final = q(NS_COMMON, "FunctionCode")
_CREATED: Final = q(NS_COMMON, "CreationDateTime")
_REFERENCED: Final = q(NS_COMMON, "ReferencedMessageID")


class Header(NamedTuple):
    """The message header's facts the rules read (ids lower-cased, codes stripped)."""

    el: etree._Element
    message_id: str
    sender: str
    receiver: str
    function: str
    created: etree._Element | None
    referenced: etree._Element | None


def read_header(root: etree._Element) -> Header:
    """The header of an XSD-valid document (the XSD makes it the root's first element)."""
    header = child(root, _MESSAGE_HEADER)
    if header is None:
        raise ValueError("The document has no MessageHeader; rules need an XSD-valid tree.")
    message_id = sender = receiver = function = ""
    created: etree._Element | None = None
    referenced: etree._Element | None = None
    for el in header:  # the last of a repeated field wins, as the XSD allows none
        tag = el.tag
        if tag == _MESSAGE_ID:
            message_id = text(el).lower()
        elif tag == _SENDER:
            sender = text(child(el, _COUNTRY))
        elif tag == _RECEIVER:
            receiver = text(child(el, _COUNTRY))
        elif tag == _FUNCTION:
            function = text(el)
        elif tag == _CREATED:
            created = el
        elif tag == _REFERENCED:
            referenced = el
    return Header(header, message_id, sender, receiver, function, created, referenced)


def future_datetime(el: etree._Element | None, what: str, now: datetime) -> Iterator[Finding]:
    """``datetime-in-future`` when ``el``'s date-time lies beyond ``now`` plus the skew."""
    value = parse_datetime(text(el))
    if el is None or value is None or value <= now + _SKEW:
        return
    minutes = int((value - now).total_seconds() // 60)
    yield DATETIME_IN_FUTURE.finding(
        el,
        f"the {what} {text(el)} is {minutes} minutes ahead of the gateway's clock "
        f"({now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}); at most 5 minutes are tolerated.",
        "Check the sending system's clock and the time zone of the value.",
    )


def header_rules(doc: Doc, h: Header, now: datetime) -> Iterator[Finding]:
    """Creation time, the reference to an earlier message, and sender against receiver."""
    yield from future_datetime(h.created, "creation date-time", now)
    needs_reference = h.function in FUNCTIONS_NEEDING_REFERENCE or doc is Doc.CUSTOMS_RESPONSE
    if h.referenced is None and needs_reference:
        what = {"1": "A cancellation", "5": "A replacement"}.get(h.function, "A customs response")
        yield REFERENCE_MISSING.finding(
            h.el,
            f"{what} must name the message it refers to, but the header has no "
            "ReferencedMessageID.",
            "Put the message id of the original document in ReferencedMessageID.",
        )
    if h.referenced is not None and text(h.referenced).lower() == h.message_id:
        yield REFERENCE_TO_SELF.finding(
            h.referenced,
            f"the ReferencedMessageID {text(h.referenced)} is this message's own id.",
            "Reference the earlier message, and give this message a new id.",
        )
    if h.sender == h.receiver:
        yield SENDER_IS_RECEIVER.finding(
            h.el,
            f"the sender and the receiver are both {h.sender}; documents go from one "
            "Member State to another.",
            "Address the message to the partner country's single window.",
        )


# --- exporting and importing country (Form D, ACDD) -------------------------------------------


def country_rules(
    h: Header, export_el: etree._Element | None, import_el: etree._Element | None, *, boxed: bool
) -> Iterator[Finding]:
    """Exporting and importing country: Member States, different, and as in the header."""

    def rule(r: Rule) -> Rule:
        return r if boxed else r.without_box()

    exporting, importing = text(export_el), text(import_el)
    for el, code, what in (
        (export_el, exporting, "exporting"),
        (import_el, importing, "importing"),
    ):
        if code not in MEMBER_STATE_SET:
            yield rule(COUNTRY_NOT_MEMBER).finding(
                el,
                f"the {what} country {code} is not an ASEAN Member State.",
                "Only the ten ASEAN Member States exchange this document.",
            )
    if exporting == importing:
        yield rule(COUNTRIES_IDENTICAL).finding(
            import_el,
            f"the exporting and importing country are both {exporting}.",
            "The importing country is where the consignee receives the goods.",
        )
    elif exporting != h.sender:
        yield rule(EXPORT_NOT_SENDER).finding(
            export_el,
            f"the exporting country {exporting} is not the sender {h.sender} named "
            "in the message header.",
            "The exporting Member State's single window sends it.",
        )
    if importing not in (exporting, h.receiver):
        yield rule(IMPORT_NOT_RECEIVER).finding(
            import_el,
            f"the importing country {importing} is not the receiver {h.receiver} "
            "named in the message header.",
            "Send the document to the importing Member State's single window.",
        )
