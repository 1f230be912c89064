"""Business rules: pure Python over a parsed tree that already passed its XSD.

Each rule has a stable code, a severity and, for Form D, the box it is about (``CATALOGUE``).
Rules trust the structure the XSD guarantees and never read the clock: ``now`` is passed in.
Findings carry the element's XPath and source line, a message a trade officer understands and
a hint on how to fix it.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

from lxml import etree

from gateway.core.codelists import (
    B2B_INCOMPLETE,
    B2B_MISSING,
    B2B_NOT_FLAGGED,
    CLOCK_SKEW_SECONDS,
    COUNTRIES_IDENTICAL,
    COUNTRY_NOT_MEMBER,
    CRITERION_FORMAT,
    DATE_IN_FUTURE,
    DATETIME_IN_FUTURE,
    DIGEST_LENGTH,
    DIGEST_LENGTHS,
    EXHIBITION_MISSING,
    EXPORT_NOT_SENDER,
    FOB_COUNTRIES,
    FOB_MISSING,
    FUNCTIONS_NEEDING_REFERENCE,
    HS_LENGTH,
    IMPORT_NOT_RECEIVER,
    ISSUED_AFTER_DEPARTURE,
    MEMBER_STATE_SET,
    NS_FORMD_EXT,
    ORIGIN_NOT_MEMBER,
    PARTIAL_ITEMS,
    PC_FLAG,
    PC_RANGE,
    RECEIPT_REFERENCE,
    REFERENCE_MISSING,
    REFERENCE_TO_SELF,
    REJECTION_REASON,
    RETRO_NO_DEPARTURE,
    RETRO_TOO_LATE,
    RETRO_UNNEEDED,
    SENDER_IS_RECEIVER,
    STATUS_PARTIALLY_UTILISED,
    STATUS_REJECTED,
    TCI_MISSING,
    TCI_NOT_FLAGGED,
    Rule,
)
from gateway.core.envelope import NS_ACDD, NS_COMMON, NS_FORMD, NS_RECEIPT, NS_RESPONSE
from gateway.core.envelope import DocumentType as Doc
from gateway.errors import Finding

# --- tags and small helpers ---------------------------------------------------------------


def _q(ns: str, path: str) -> str:
    return "/".join(f"{{{ns}}}{part}" for part in path.split("/"))


_SKEW: Final = timedelta(seconds=CLOCK_SKEW_SECONDS)
_CTC = r"(?:CC|CTH|CTSH)"
_PCT = r"(\d{1,3}(?:\.\d{1,2})?) ?%"
_SIMPLE_RE: Final = re.compile(rf"(?:WO|SP|{_CTC})")
_RVC_RE: Final = re.compile(rf"(?:{_CTC} ?\+ ?)?{_PCT}")
_PC_RE: Final = re.compile(rf"PC ?{_PCT}")


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _child(el: etree._Element | None, tag: str) -> etree._Element | None:
    return None if el is None else next(el.iterchildren(tag), None)


def _datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None  # a valid xs:dateTime Python cannot represent (year 10000, 24:00:00)


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


# --- the header: rules for every document type ---------------------------------------------

_C = {
    name: _q(NS_COMMON, name)
    for name in (
        "MessageHeader",
        "MessageID",
        "SenderParty",
        "ReceiverParty",
        "CountryCode",
        "FunctionCode",
        "CreationDateTime",
        "ReferencedMessageID",
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Header:
    el: etree._Element
    message_id: str
    sender: str
    receiver: str
    function: str
    created: etree._Element | None
    referenced: etree._Element | None


def _header(root: etree._Element) -> _Header:
    header = next(root.iterchildren(_C["MessageHeader"]))  # the XSD requires it
    fields = {el.tag: el for el in header}
    return _Header(
        el=header,
        message_id=_text(fields.get(_C["MessageID"])).lower(),
        sender=_text(_child(fields.get(_C["SenderParty"]), _C["CountryCode"])),
        receiver=_text(_child(fields.get(_C["ReceiverParty"]), _C["CountryCode"])),
        function=_text(fields.get(_C["FunctionCode"])),
        created=fields.get(_C["CreationDateTime"]),
        referenced=fields.get(_C["ReferencedMessageID"]),
    )


def _future_datetime(el: etree._Element | None, what: str, now: datetime) -> Iterator[Finding]:
    value = _datetime(_text(el))
    if el is None or value is None or value <= now + _SKEW:
        return
    minutes = int((value - now).total_seconds() // 60)
    yield DATETIME_IN_FUTURE.finding(
        el,
        f"the {what} {_text(el)} is {minutes} minutes ahead of the gateway's clock "
        f"({now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}); at most 5 minutes are tolerated.",
        "Check the sending system's clock and the time zone of the value.",
    )


def _header_rules(doc: Doc, h: _Header, now: datetime) -> Iterator[Finding]:
    yield from _future_datetime(h.created, "creation date-time", now)
    needs_reference = h.function in FUNCTIONS_NEEDING_REFERENCE or doc is Doc.CUSTOMS_RESPONSE
    if h.referenced is None and needs_reference:
        what = {"1": "A cancellation", "5": "A replacement"}.get(h.function, "A customs response")
        yield REFERENCE_MISSING.finding(
            h.el,
            f"{what} must name the message it refers to, but the header has no "
            "ReferencedMessageID.",
            "Put the message id of the original document in ReferencedMessageID.",
        )
    if h.referenced is not None and _text(h.referenced).lower() == h.message_id:
        yield REFERENCE_TO_SELF.finding(
            h.referenced,
            f"the ReferencedMessageID {_text(h.referenced)} is this message's own id.",
            "Reference the earlier message, and give this message a new id.",
        )
    if h.sender == h.receiver:
        yield SENDER_IS_RECEIVER.finding(
            h.el,
            f"the sender and the receiver are both {h.sender}; documents go from one "
            "Member State to another.",
            "Address the message to the partner country's single window.",
        )


def _country_rules(
    h: _Header, export_el: etree._Element | None, import_el: etree._Element | None, *, boxed: bool
) -> Iterator[Finding]:
    """Exporting and importing country: Member States, different, and as in the header."""

    def rule(r: Rule) -> Rule:
        return r if boxed else r.without_box()

    exporting, importing = _text(export_el), _text(import_el)
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


# --- Form D: one pass collects the facts, then the rules read them --------------------------

_FD = {
    name: _q(NS_FORMD, name)
    for name in (
        "Declaration",
        "IssueDateTime",
        "ID",
        "CountryCode",
        "SequenceNumeric",
        "Classification",
        "ExportCountry",
        "Destination",
        "Origin",
    )
}
_FDX = {
    name: _q(NS_FORMD_EXT, name)
    for name in (
        "CertificateFlags",
        "OriginCriterionCode",
        "FOBValueAmount",
        "BackToBackOriginalReference",
        "ID",
        "IssueDate",
        "ThirdCountryInvoicingParty",
        "Exhibition",
        "DeclarationDate",
        "DepartureDate",
    )
}
_FD_TAGS: Final = (
    _FD["IssueDateTime"],
    _FD["ID"],
    _FD["CountryCode"],
    _FD["SequenceNumeric"],
    *(
        _FDX[name]
        for name in (
            "CertificateFlags",
            "OriginCriterionCode",
            "FOBValueAmount",
            "BackToBackOriginalReference",
            "ThirdCountryInvoicingParty",
            "Exhibition",
            "DeclarationDate",
            "DepartureDate",
        )
    ),
)


@dataclass(slots=True)
class _Item:
    """One goods item's facts (filled while the pass walks through the item)."""

    el: etree._Element
    seq: str
    hs: etree._Element | None = None
    country: etree._Element | None = None
    criterion: etree._Element | None = None
    fob: bool = False


@dataclass(slots=True)
class _FormD:
    """The facts of one Form D the rules look at (filled by ``_collect``)."""

    issue: etree._Element | None = None
    declared: etree._Element | None = None
    departure: etree._Element | None = None
    flags_el: etree._Element | None = None
    exporting: etree._Element | None = None
    importing: etree._Element | None = None
    invoicing: etree._Element | None = None
    exhibition: etree._Element | None = None
    originals: list[etree._Element] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)


# Positions in _FD_TAGS, for a cheap dispatch in the hot loop below.
_ISSUE, _ID, _COUNTRY, _SEQ, _FLAGS, _CRITERION, _FOB, _B2B, _TCI, _EXHIBITION, _DECLARED, _DEP = (
    range(12)
)
_KIND: Final = {tag: kind for kind, tag in enumerate(_FD_TAGS)}


def _collect(root: etree._Element) -> _FormD:  # noqa: PLR0912  (one branch per tag)
    """One pass over the tags the rules need; the XSD fixes their order and parents."""
    facts = _FormD()
    item: _Item | None = None
    export_tag = _FD["ExportCountry"]
    for el in root.iter(_FD_TAGS):
        kind = _KIND[el.tag]
        if kind == _SEQ:
            parent = el.getparent()
            assert parent is not None  # noqa: S101
            item = _Item(el=parent, seq=(el.text or "").strip())
            facts.items.append(item)
        elif item is not None:  # inside the goods items (they come last)
            if kind == _ID:
                item.hs = el  # Commodity/Classification/ID is an item's only fd:ID
            elif kind == _COUNTRY:
                item.country = el  # Origin/CountryCode
            elif kind == _CRITERION:
                item.criterion = el
            elif kind == _FOB:
                item.fob = True
        elif kind == _ID:
            if el.getparent().tag == export_tag:  # type: ignore[union-attr]
                facts.exporting = el
        elif kind == _COUNTRY:
            facts.importing = el  # Destination/CountryCode
        elif kind == _ISSUE:
            if facts.issue is None:  # Declaration/IssueDateTime precedes Invoice/IssueDateTime
                facts.issue = el
        elif kind == _FLAGS:
            facts.flags_el = el
        elif kind == _B2B:
            facts.originals.append(el)
        elif kind == _TCI:
            facts.invoicing = el
        elif kind == _EXHIBITION:
            facts.exhibition = el
        elif kind == _DECLARED:
            facts.declared = el
        elif kind == _DEP:
            facts.departure = el
    return facts


_FLAG_NAMES: Final = {
    _q(NS_FORMD_EXT, f"{name}Indicator"): name
    for name in (
        "ThirdCountryInvoicing",
        "Exhibition",
        "Accumulation",
        "DeMinimis",
        "BackToBack",
        "IssuedRetroactively",
        "PartialCumulation",
    )
}


def _flags(flags_el: etree._Element | None) -> dict[str, bool]:
    """Box 13 tick boxes by name (``BackToBack``, ``IssuedRetroactively`` ...)."""
    if flags_el is None:
        return {}
    return {
        _FLAG_NAMES.get(el.tag, ""): (el.text or "").strip() in {"true", "1"} for el in flags_el
    }


_CRITERIA_HINT = (
    "Enter the criterion as in Overleaf Note 3: WO, CC, CTH, CTSH, SP, a "
    "percentage such as 40%, a combination such as CTSH + 35%, or PC 25%."
)


def _criterion(item: _Item, fob_needed: bool) -> Iterator[Finding]:
    """Box 8 format, and Box 9 FOB when RVC/PC applies; ``fob_needed`` = KH, ID or LA."""
    el = item.criterion
    code = " ".join(_text(el).upper().split())
    value: float | None = None
    if (match := _PC_RE.fullmatch(code)) is not None:
        value = float(match.group(1))
        if not 20 <= value < 40:
            yield PC_RANGE.finding(
                el,
                f"the partial cumulation criterion '{code}' needs a regional value "
                "content of at least 20% and below 40%.",
                "From 40% give the percentage "
                "alone (e.g. 40%); below 20% partial cumulation does not apply.",
                item=item.seq,
            )
    elif (match := _RVC_RE.fullmatch(code)) is not None:
        value = float(match.group(1))
    if (value is None and _SIMPLE_RE.fullmatch(code) is None) or (value or 0) > 100:
        yield CRITERION_FORMAT.finding(
            el,
            f"the origin criterion '{_text(el)}' is not one of WO, CC, CTH, CTSH, SP, a "
            "percentage (e.g. 40%), a combination such as 'CTSH + 35%', or 'PC x%'.",
            _CRITERIA_HINT,
            item=item.seq,
        )
    elif value is not None and fob_needed and not item.fob:
        yield FOB_MISSING.finding(
            item.el,
            f"the origin criterion '{code}' is a regional value content and the "
            "goods are exported from or imported into Cambodia, Indonesia or Lao PDR, so the "
            "FOB value must be shown.",
            'Add FOBValueAmount with its currency, e.g. currencyID="USD".',
            item=item.seq,
        )


def _item_rules(item: _Item, fob_needed: bool) -> Iterator[Finding]:
    digits = _text(item.hs).replace(".", "")
    if len(digits) not in (6, 8):
        yield HS_LENGTH.finding(
            item.hs,
            f"the HS code '{_text(item.hs)}' has {len(digits)} digits; give the "
            "8-digit AHTN code of the importing country or the 6-digit HS subheading.",
            "For example 84821000 (AHTN) or 848210 (HS).",
            item=item.seq,
        )
    if _text(item.country) not in MEMBER_STATE_SET:
        yield ORIGIN_NOT_MEMBER.finding(
            item.country,
            f"the country of origin {_text(item.country)} is not an ASEAN "
            "Member State; ATIGA origin is ASEAN origin.",
            "Give the Member State where the goods were produced.",
            item=item.seq,
        )
    yield from _criterion(item, fob_needed)


def _issue_dates(facts: _FormD, flags: dict[str, bool], now: datetime) -> Iterator[Finding]:
    """Box 3, 12 and 13: issue date against departure (Rule 10) and against today."""
    issue = date.fromisoformat(_text(facts.issue))
    latest = (now + timedelta(days=1)).date()  # a Member State's today may be UTC's tomorrow
    for el, what in ((facts.issue, "issue date"), (facts.declared, "exporter's declaration date")):
        if el is not None and date.fromisoformat(_text(el)) > latest:
            yield DATE_IN_FUTURE.finding(
                el,
                f"the {what} {_text(el)} lies in the future.",
                "Give the date the document was actually signed.",
            )
    departure = date.fromisoformat(_text(facts.departure)) if facts.departure is not None else None
    if flags.get("IssuedRetroactively"):
        if departure is None:
            yield RETRO_NO_DEPARTURE.finding(
                facts.issue,
                "the Form D is marked 'Issued Retroactively' but gives no "
                "departure date, so the one-year limit cannot be checked.",
                "Give the departure date in Box 3.",
            )
        elif issue > _one_year_after(departure):
            yield RETRO_TOO_LATE.finding(
                facts.issue,
                f"the Form D was issued retroactively on {issue}, more than one "
                f"year after shipment on {departure} (Rule 10(2)).",
                "A Form D can be issued retroactively only within one year of shipment.",
            )
        elif issue <= departure:
            yield RETRO_UNNEEDED.finding(
                facts.issue,
                f"'Issued Retroactively' is ticked, but the issue date {issue} is "
                f"not after the departure date {departure}.",
                "Untick 'Issued Retroactively' in Box 13, or correct the dates.",
            )
    elif departure is not None and issue > departure:
        yield ISSUED_AFTER_DEPARTURE.finding(
            facts.issue,
            f"the issue date {issue} is after the departure date {departure}; a "
            "Form D is issued at or before shipment (Rule 10(1)).",
            "If it was issued late for a valid cause, tick 'Issued Retroactively' in Box 13.",
        )


def _flag_rules(facts: _FormD, flags: dict[str, bool]) -> Iterator[Finding]:
    """Box 13 tick boxes against the data each one needs."""
    flags_el = facts.flags_el
    if flags.get("BackToBack") and not facts.originals:
        yield B2B_MISSING.finding(
            flags_el,
            "the Form D is marked 'Back-to-Back CO' but names no original Proof of Origin.",
            "Give the reference number and issue date of each original (Note 12).",
        )
    for el in facts.originals:
        missing = [
            what
            for tag, what in ((_FDX["ID"], "reference number"), (_FDX["IssueDate"], "issue date"))
            if _child(el, tag) is None
        ]
        if missing:
            yield B2B_INCOMPLETE.finding(
                el,
                f"an original Proof of Origin is given without its {' and '.join(missing)}.",
                "A back-to-back Form D shows the reference number and issue date of every "
                "original Proof of Origin (Rule 11).",
            )
    if facts.originals and not flags.get("BackToBack"):
        yield B2B_NOT_FLAGGED.finding(
            flags_el,
            "original Proofs of Origin are given but 'Back-to-Back CO' is not ticked.",
            "Tick 'Back-to-Back CO', or remove the original references.",
        )
    if flags.get("ThirdCountryInvoicing") and facts.invoicing is None:
        yield TCI_MISSING.finding(
            flags_el,
            "'Third Country Invoicing' is ticked but the invoicing company is not named.",
            "Give the invoicing company's name and country (Note 11).",
        )
    elif facts.invoicing is not None and not flags.get("ThirdCountryInvoicing"):
        yield TCI_NOT_FLAGGED.finding(
            facts.invoicing,
            "an invoicing company is named but 'Third Country Invoicing' is not ticked.",
            "Tick 'Third Country Invoicing' in Box 13.",
        )
    if flags.get("Exhibition") and facts.exhibition is None:
        yield EXHIBITION_MISSING.finding(
            flags_el,
            "'Exhibition' is ticked but the exhibition is not named.",
            "Give the exhibition's name and address (Note 13).",
        )
    pc_items = sum(1 for item in facts.items if _text(item.criterion).upper().startswith("PC"))
    if (pc_items > 0) != bool(flags.get("PartialCumulation")):
        state = "not ticked" if pc_items else "ticked"
        yield PC_FLAG.finding(
            flags_el,
            f"'Partial Cumulation' is {state} but {pc_items} goods item(s) use a "
            "'PC x%' criterion.",
            "Tick 'Partial Cumulation' exactly when an item uses 'PC x%'.",
        )


def _form_d(root: etree._Element, h: _Header, now: datetime) -> Iterator[Finding]:
    facts = _collect(root)
    yield from _country_rules(h, facts.exporting, facts.importing, boxed=True)
    fob_needed = not {_text(facts.exporting), _text(facts.importing)}.isdisjoint(FOB_COUNTRIES)
    for item in facts.items:
        yield from _item_rules(item, fob_needed)
    flags = _flags(facts.flags_el)
    yield from _issue_dates(facts, flags, now)
    yield from _flag_rules(facts, flags)


# --- ACDD, Customs Response, Delivery receipt ------------------------------------------------


def _acdd(root: etree._Element, h: _Header, now: datetime) -> Iterator[Finding]:
    shipment = root.find(_q(NS_ACDD, "Declaration/GoodsShipment"))
    yield from _country_rules(
        h,
        _child(_child(shipment, _q(NS_ACDD, "ExportCountry")), _q(NS_ACDD, "ID")),
        _child(_child(shipment, _q(NS_ACDD, "Destination")), _q(NS_ACDD, "CountryCode")),
        boxed=False,
    )
    yield from _future_datetime(
        root.find(_q(NS_ACDD, "Declaration/IssueDateTime")), "declaration date-time", now
    )


def _response(root: etree._Element, now: datetime) -> Iterator[Finding]:
    response = root.find(_q(NS_RESPONSE, "Response"))
    assert response is not None  # noqa: S101
    yield from _future_datetime(
        response.find(_q(NS_RESPONSE, "IssueDateTime")), "response date-time", now
    )
    status_tag, error_tag = _q(NS_RESPONSE, "Status/NameCode"), _q(NS_RESPONSE, "Error")
    items = response.findall(_q(NS_RESPONSE, "GovernmentAgencyGoodsItem"))
    status = _text(response.find(status_tag))
    if status == STATUS_REJECTED and response.find(error_tag) is None:
        yield REJECTION_REASON.finding(
            response,
            "the document is REJECTED but no reason is given.",
            "Add an Error with a reason code and a "
            "description the exporter can act on (Rule 30(3)).",
        )
    if status == STATUS_PARTIALLY_UTILISED and not items:
        yield PARTIAL_ITEMS.finding(
            response,
            "the document is PARTIALLY_UTILISED but no goods item has a status.",
            "Give the status of each goods item.",
        )
    for item_el in items:
        if _text(item_el.find(status_tag)) == STATUS_REJECTED and item_el.find(error_tag) is None:
            item = _text(item_el.find(_q(NS_RESPONSE, "SequenceNumeric")))
            yield REJECTION_REASON.finding(
                item_el,
                "the item is REJECTED but no reason is given.",
                "Add an Error to the item with the reason for refusing preference.",
                item=item,
            )


def _receipt(root: etree._Element, h: _Header, now: datetime) -> Iterator[Finding]:
    receipt = root.find(_q(NS_RECEIPT, "Receipt"))
    assert receipt is not None  # noqa: S101
    yield from _future_datetime(
        receipt.find(_q(NS_RECEIPT, "ReceivedDateTime")), "time of receipt", now
    )
    received = receipt.find(_q(NS_RECEIPT, "ReceivedMessageID"))
    if h.referenced is not None and _text(h.referenced).lower() != _text(received).lower():
        yield RECEIPT_REFERENCE.finding(
            received,
            f"the receipt acknowledges message "
            f"{_text(received)} but the header refers to "
            f"{_text(h.referenced)}.",
            "Both must name the message that was received.",
        )
    value_el = receipt.find(_q(NS_RECEIPT, "Digest/Value"))
    expected = DIGEST_LENGTHS[_text(receipt.find(_q(NS_RECEIPT, "Digest/AlgorithmURI")))]
    try:
        length = len(b64decode("".join(_text(value_el).split()), validate=True))
    except (binascii.Error, ValueError):
        length = -1
    if length != expected:
        yield DIGEST_LENGTH.finding(
            value_el,
            f"the digest value is {max(length, 0)} bytes long; "
            f"the algorithm produces {expected} bytes.",
            "Give the base64 of the digest of the received bytes.",
        )


def check_rules(root: etree._Element, doc: Doc, *, now: datetime) -> tuple[Finding, ...]:
    """Run every business rule for ``doc`` over an XSD-valid ``root``, as of ``now``."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    h = _header(root)
    findings = list(_header_rules(doc, h, now))
    if doc is Doc.FORM_D:
        findings.extend(_form_d(root, h, now))
    elif doc is Doc.ACDD:
        findings.extend(_acdd(root, h, now))
    elif doc is Doc.CUSTOMS_RESPONSE:
        findings.extend(_response(root, now))
    else:
        findings.extend(_receipt(root, h, now))
    return tuple(findings)
