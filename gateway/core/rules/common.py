"""What every document type shares: reading the tree, the message header and its rules, and
the exporting/importing country rules (Form D and ACDD).

The readers here are the hot path of every rule: a child is found by a plain loop over the
parent's children (``gateway.core.envelope.first_child``) rather than ``iterchildren(tag)``
(several times dearer, most of it building the iterator), and the header is read in one loop
over its children.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Final, NamedTuple, Protocol

from lxml import etree

from gateway.core.code_lists import (
    REC20,
    REC20_STATUS_WORDS,
    UNLOCODE,
    current_units,
    locations,
    locode_countries,
    retired_units,
)
from gateway.core.envelope import NS_ACDD, NS_COMMON, NS_FORMD
from gateway.core.envelope import DocumentType as Doc
from gateway.core.envelope import first_child as child
from gateway.core.nomenclature import edition_on
from gateway.core.nomenclature import load as load_hs
from gateway.core.nomenclature import normalise as normalise_hs
from gateway.core.parties import default_parties
from gateway.core.rule_catalogue import (
    CLOCK_SKEW_SECONDS,
    COUNTRIES_IDENTICAL,
    COUNTRY_NOT_MEMBER,
    DATETIME_IN_FUTURE,
    EXPORT_NOT_SENDER,
    FUNCTIONS_NEEDING_REFERENCE,
    HS_LENGTH,
    HS_UNKNOWN,
    IMPORT_NOT_RECEIVER,
    LOCODE_COUNTRY,
    LOCODE_UNKNOWN,
    MEMBER_STATE_SET,
    REFERENCE_MISSING,
    REFERENCE_TO_SELF,
    SENDER_IS_RECEIVER,
    UNIT_RETIRED,
    UNIT_UNKNOWN,
)
from gateway.errors import Finding

# --- reading the tree -----------------------------------------------------------------------


def clark_path(ns: str, path: str) -> str:
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
_MESSAGE_HEADER: Final = clark_path(NS_COMMON, "MessageHeader")
_MESSAGE_ID: Final = clark_path(NS_COMMON, "MessageID")
_SENDER: Final = clark_path(NS_COMMON, "SenderParty")
_RECEIVER: Final = clark_path(NS_COMMON, "ReceiverParty")
_COUNTRY: Final = clark_path(NS_COMMON, "CountryCode")
_FUNCTION: Final = clark_path(NS_COMMON, "FunctionCode")
_CREATED: Final = clark_path(NS_COMMON, "CreationDateTime")
_REFERENCED: Final = clark_path(NS_COMMON, "ReferencedMessageID")


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


# Document types that always refer to an earlier message, and how a finding names them.
_ANSWERING_TYPES: Final = {
    Doc.CUSTOMS_RESPONSE: "A customs response",
    Doc.RETRANSMISSION_REQUEST: "A re-transmission request",
    Doc.REJECTION_NOTICE: "A rejection notice",
    Doc.CLARIFICATION: "A clarification",
    Doc.RETRO_CHECK_REQUEST: "A retroactive check request",
    Doc.RETRO_CHECK_REPLY: "A retroactive check reply",
    Doc.VISIT_REQUEST: "A verification visit request",
    Doc.VISIT_CONSENT: "A verification visit consent",
    Doc.VISIT_RESULT: "A verification visit result",
    Doc.CE_LOOKUP_RESPONSE: "A certified-exporter lookup response",
    Doc.AEO_STATUS_RESPONSE: "An AEO status response",
    Doc.ORIGIN_DETERMINATION: "An origin determination",
}


def header_rules(doc: Doc, h: Header, now: datetime) -> Iterator[Finding]:
    """Creation time, the reference to an earlier message, and sender against receiver."""
    yield from future_datetime(h.created, "creation date-time", now)
    needs_reference = h.function in FUNCTIONS_NEEDING_REFERENCE or doc in _ANSWERING_TYPES
    if h.referenced is None and needs_reference:
        what = {"1": "A cancellation", "5": "A replacement"}.get(
            h.function, _ANSWERING_TYPES.get(doc, "A customs response")
        )
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


@functools.cache
def asean_members() -> frozenset[str]:
    """The Member States of the parties plan (those that exchange nothing are refused later,
    by the routing decision, with receiver-not-enabled)."""
    return frozenset(default_parties().members)


def country_rules(
    h: Header, export_el: etree._Element | None, import_el: etree._Element | None, *, boxed: bool
) -> Iterator[Finding]:
    """Exporting and importing country: Member States, different, and as in the header."""

    exporting, importing = text(export_el), text(import_el)
    for el, code, what in (
        (export_el, exporting, "exporting"),
        (import_el, importing, "importing"),
    ):
        if code not in asean_members():
            yield COUNTRY_NOT_MEMBER.boxed_if(boxed).finding(
                el,
                f"the {what} country {code} is not an ASEAN Member State.",
                "Only ASEAN Member States exchange this document.",
            )
    if exporting == importing:
        yield COUNTRIES_IDENTICAL.boxed_if(boxed).finding(
            import_el,
            f"the exporting and importing country are both {exporting}.",
            "The importing country is where the consignee receives the goods.",
        )
    elif exporting != h.sender:
        yield EXPORT_NOT_SENDER.boxed_if(boxed).finding(
            export_el,
            f"the exporting country {exporting} is not the sender {h.sender} named "
            "in the message header.",
            "The exporting Member State's single window sends it.",
        )
    if importing not in (exporting, h.receiver):
        yield IMPORT_NOT_RECEIVER.boxed_if(boxed).finding(
            import_el,
            f"the importing country {importing} is not the receiver {h.receiver} "
            "named in the message header.",
            "Send the document to the importing Member State's single window.",
        )


# --- official code lists and the HS nomenclature (Form D, ACDD) ------------------------------

_HS_LENGTHS: Final = (6, 8, 10)


def hs_rules(
    el: etree._Element | None, code: str, day: date, *, boxed: bool, item: str | None
) -> Iterator[Finding]:
    """Box 7 HS code: 6 (HS), 8 (AHTN) or 10 (national) digits, dots dropped, whose first six
    digits are a subheading of the HS edition in force on ``day`` (the certificate's date)."""
    digits = normalise_hs(code)
    if boxed and len(digits) not in _HS_LENGTHS:
        yield HS_LENGTH.finding(
            el,
            f"the HS code '{code}' has {len(digits)} digits; give the 6-digit HS subheading, "
            "the 8-digit AHTN code or a 10-digit national tariff code.",
            "For example 84821000 (AHTN), 848210 (HS) or 8482.10.00.10 (national).",
            item=item,
        )
        return
    edition = edition_on(day)
    if edition is None or len(digits) < 6:
        return
    missing = load_hs(edition).missing_level(digits)
    if missing is None:
        return
    part = {"chapter": digits[:2], "heading": digits[:4], "subheading": digits[:6]}[missing]
    rule = HS_UNKNOWN.boxed_if(boxed)
    yield rule.finding(
        el,
        f"the HS code '{code}' is not in the {edition.name} nomenclature in force on "
        f"{day.isoformat()}: {missing} {part} does not exist.",
        f"Give a subheading of {edition.name} (6 digits; AHTN and national codes begin with "
        "one). Codes of an older edition must be converted with the correlation table.",
        item=item,
    )


def _item_of(el: etree._Element) -> str | None:
    """The goods item number (SequenceNumeric) of the item ``el`` is in, if any."""
    for ancestor in el.iterancestors():
        first = ancestor[0] if len(ancestor) else None
        if first is not None and str(first.tag).endswith("}SequenceNumeric"):
            return text(first)
    return None


_FD_UNITS: Final = (
    clark_path(NS_FORMD, "GrossMassMeasure"),
    clark_path(NS_FORMD, "TariffQuantity"),
)
_AC_UNITS: Final = (clark_path(NS_ACDD, "GrossMassMeasure"), clark_path(NS_ACDD, "TariffQuantity"))


def unit_rules(root: etree._Element, tags: tuple[str, ...], *, boxed: bool) -> Iterator[Finding]:
    """``unit_findings`` over every element of ``root`` with one of ``tags`` (a compiled XPath
    of their unitCode was no faster)."""
    yield from unit_findings(root.iter(tags), boxed=boxed)


def unit_findings(measures: Iterable[etree._Element], *, boxed: bool) -> Iterator[Finding]:
    """Units against the whole of Rec 20: ``unit-code-unknown`` (an error) for a code it does
    not define, ``unit-code-retired`` (a warning: still defined, not for new use) for one marked
    deleted or deprecated."""
    current = current_units()
    retired = retired_units()
    for el in measures:
        code = el.get("unitCode", "")
        if code in current:
            continue
        item = _item_of(el)
        unit = retired.get(code)
        if unit is None:
            yield UNIT_UNKNOWN.boxed_if(boxed).finding(
                el,
                f"the unit '{code}' is not in {REC20}.",
                "Use a Rec 20 code, e.g. KGM kilogram, H87 piece, LTR litre, CTM carat; "
                "package counts use X plus the Rec 21 package code (XBX box, XCT carton).",
                item=item,
            )
            continue
        state = REC20_STATUS_WORDS[unit.status]
        yield UNIT_RETIRED.boxed_if(boxed).finding(
            el,
            f"the unit '{unit.code}' ({unit.name}) is marked {state} in {REC20}.",
            "Use the current Rec 20 code for the unit, e.g. KGM kilogram or H87 piece; package "
            "counts use X plus the Rec 21 package code (XBX box).",
            item=item,
        )


def location_rules(
    places: tuple[tuple[etree._Element | None, str, str, str | None], ...], *, boxed: bool
) -> Iterator[Finding]:
    """UN/LOCODE warnings for each ``(element, expected country, what, box)``: a code outside
    the expected country, and a code of a country the gateway holds that is not in the list."""
    known = locations()
    held = locode_countries()
    for el, expected, what, box in places:
        code = text(el)
        if el is None or not code:
            continue
        country = code[:2]
        if expected and country != expected:
            rule = replace(LOCODE_COUNTRY, box=box if boxed else None)
            yield rule.finding(
                el,
                f"the {what} {code} is in {country}, not in {expected}.",
                f"The {what} is normally in {expected}: check the code against {UNLOCODE} "
                "and the countries. The officer decides whether the goods really went that way.",
            )
        elif country in held and code not in known:
            rule = replace(LOCODE_UNKNOWN, box=box if boxed else None)
            yield rule.finding(
                el,
                f"the {what} {code} is not a UN/LOCODE of {country} in {UNLOCODE}.",
                "Check the code in the current UN/LOCODE list (unece.org/trade/uncefact/"
                "unlocode): a location added after that edition is valid, so the officer "
                "decides.",
            )


class ClassifiedItem(Protocol):
    """A goods item's HS code as the Form D pass collected it."""

    @property
    def hs_el(self) -> etree._Element | None: ...
    @property
    def hs(self) -> str: ...
    @property
    def seq(self) -> str: ...


_FD_ISSUE_PLACE: Final = clark_path(NS_FORMD, "IssueLocationID")
_FD_CONSIGNMENT: Final = clark_path(NS_FORMD, "Consignment")
_FD_LOADING: Final = clark_path(NS_FORMD, "LoadingLocation")
_FD_UNLOADING: Final = clark_path(NS_FORMD, "UnloadingLocation")
_FD_ID: Final = clark_path(NS_FORMD, "ID")


@functools.lru_cache(maxsize=4096)
def _hs_passes(code: str, day: date) -> bool:
    """True when Box 7's ``code`` raises no finding on ``day`` (cached: a certificate's
    hundreds of goods items share a handful of codes)."""
    return next(hs_rules(None, code, day, boxed=True, item=None), None) is None


def countries_agree(h: Header, exporting: str, importing: str) -> bool:
    """True when the exporting and importing countries are two Member States and the header's
    sender and receiver: only then is a port compared with them (otherwise a country rule has
    already said what is wrong, and a port warning would be noise)."""
    return (
        exporting in MEMBER_STATE_SET
        and importing in MEMBER_STATE_SET
        and exporting != importing
        and (exporting, importing) == (h.sender, h.receiver)
    )


def _next(el: etree._Element | None, tag: str) -> etree._Element | None:
    """``el``'s next sibling when it has ``tag`` (the XSD fixes the order; optional elements)."""
    following = el.getnext() if el is not None else None
    return following if following is not None and following.tag == tag else None


_FEW_ITEMS: Final = 20


def _measures(items: Sequence[ClassifiedItem]) -> Iterator[etree._Element]:
    """Box 9's measures of each goods item: Classification is followed by GoodsMeasure."""
    for item in items:
        classification = item.hs_el.getparent() if item.hs_el is not None else None
        measure = classification.getnext() if classification is not None else None
        if measure is not None:
            yield from measure


def form_d_code_list_rules(
    root: etree._Element,
    items: Sequence[ClassifiedItem],
    h: Header,
    *,
    issue: etree._Element | None,
    exporting: etree._Element | None,
    importing: etree._Element | None,
) -> Iterator[Finding]:
    """Form D Boxes 3, 7, 9 and 12 against the official lists: HS codes in the edition in force
    on the issue date (``issue``: Declaration/IssueDateTime), retired or unknown units, and
    UN/LOCODEs of the right countries. Elements are reached from their neighbours the Form D
    pass already found (``importing`` is Destination/CountryCode), not by searching the tree."""
    day = date.fromisoformat(text(issue))
    for item in items:
        if not _hs_passes(item.hs, day):
            yield from hs_rules(item.hs_el, item.hs, day, boxed=True, item=item.seq)
    if len(items) <= _FEW_ITEMS:  # few items: from the items found, cheaper than a tree walk
        yield from unit_findings(_measures(items), boxed=True)
    else:  # many items: one walk in C over the tree is cheaper
        yield from unit_rules(root, _FD_UNITS, boxed=True)
    export_code, import_code = text(exporting), text(importing)
    if not countries_agree(h, export_code, import_code):
        export_code = import_code = ""
    destination = importing.getparent() if importing is not None else None
    consignment = _next(destination, _FD_CONSIGNMENT)
    loading = unloading = None
    for el in consignment if consignment is not None else ():
        if el.tag == _FD_LOADING:
            loading = child(el, _FD_ID)
        elif el.tag == _FD_UNLOADING:
            unloading = child(el, _FD_ID)
    yield from location_rules(
        (
            (_next(issue, _FD_ISSUE_PLACE), export_code, "place of issue", "12"),
            (loading, export_code, "port of loading", "3"),
            (unloading, import_code, "port of discharge", "3"),
        ),
        boxed=True,
    )


def child_path(el: etree._Element | None, path: str) -> etree._Element | None:
    """``el.find(path)``, or ``None`` when ``el`` is ``None``."""
    return el.find(path) if el is not None else None


_AC_HS: Final = clark_path(NS_ACDD, "Commodity/Classification/ID")
_AC_ITEM: Final = clark_path(NS_ACDD, "GovernmentAgencyGoodsItem")
_AC_SEQ: Final = clark_path(NS_ACDD, "SequenceNumeric")
_AC_CONSIGNMENT: Final = clark_path(NS_ACDD, "Consignment")
_AC_LOADING: Final = clark_path(NS_ACDD, "LoadingLocation/ID")
_AC_UNLOADING: Final = clark_path(NS_ACDD, "UnloadingLocation/ID")


def acdd_code_list_rules(
    shipment: etree._Element | None,
    h: Header,
    *,
    issued: etree._Element | None,
    exporting: str,
    importing: str,
) -> Iterator[Finding]:
    """ACDD fields h (HS code), j (unit) and m (ports) against the official lists, as for the
    Form D but without boxes; the HS edition is the one in force on the declaration's date."""
    if shipment is None:
        return
    moment = parse_datetime(text(issued))
    for item in shipment.iter(_AC_ITEM):
        hs_el = item.find(_AC_HS)
        if moment is not None and hs_el is not None:
            code = text(hs_el)
            if not _hs_passes(code, moment.date()):
                seq = text(child(item, _AC_SEQ)) or None
                yield from hs_rules(hs_el, code, moment.date(), boxed=False, item=seq)
    yield from unit_rules(shipment, _AC_UNITS, boxed=False)
    if not countries_agree(h, exporting, importing):
        exporting = importing = ""
    consignment = shipment.find(_AC_CONSIGNMENT)
    yield from location_rules(
        (
            (child_path(consignment, _AC_LOADING), exporting, "port of loading", None),
            (child_path(consignment, _AC_UNLOADING), importing, "port of discharge", None),
        ),
        boxed=False,
    )
