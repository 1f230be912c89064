"""Form D rules: one pass over the tree collects the facts, then each rule reads them.

The pass is one ``root.iter(tags)`` (the walk runs in C and stops only at the few elements the
rules need); the texts the rules compare are read once, while collecting.
The XSD fixes the order and the parents of every element, which the pass relies on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, NamedTuple

from lxml import etree

from gateway.core.envelope import NS_COMMON, NS_FORMD
from gateway.core.envelope import first_child as child
from gateway.core.rule_catalogue import (
    B2B_EXPIRED,
    B2B_INCOMPLETE,
    B2B_MISSING,
    B2B_NOT_EARLIER,
    B2B_NOT_FLAGGED,
    B2B_ORIGIN,
    B2B_SAME_COUNTRY,
    BUDDHIST_ERA_OFFSET,
    CERTIFIED_TRUE_COPY,
    CRITERION_BELOW_THRESHOLD,
    CRITERION_FORMAT,
    DATE_IN_FUTURE,
    DE_MINIMIS_NO_CTC,
    DECLARATION_AFTER_ISSUE,
    EXHIBITION_COUNTRY,
    EXHIBITION_MISSING,
    EXPORTER_ABROAD,
    FOB_COUNTRIES,
    FOB_MISSING,
    FOB_NOT_REQUIRED,
    INVOICE_AFTER_ISSUE,
    INVOICE_IMPLAUSIBLE,
    ISSUE_GRACE_DAYS,
    ISSUED_AFTER_DEPARTURE,
    NS_FORMD_EXT,
    ORIGIN_NOT_EXPORTING,
    ORIGIN_NOT_MEMBER,
    PC_FLAG,
    PC_MINIMUM,
    PC_RANGE,
    RETRO_NO_DEPARTURE,
    RETRO_TOO_LATE,
    RETRO_UNNEEDED,
    RVC_THRESHOLD,
    TCI_MISSING,
    TCI_NOT_FLAGGED,
)
from gateway.core.rules.common import Header, asean_members, clark_path, country_rules, text
from gateway.core.rules.common import form_d_code_list_rules as _code_list_rules
from gateway.errors import Finding

# --- the facts ------------------------------------------------------------------------------

_EXPORT_COUNTRY: Final = clark_path(NS_FORMD, "ExportCountry")
_ORIGINAL_ID: Final = clark_path(NS_FORMD_EXT, "ID")
_ORIGINAL_ISSUE_DATE: Final = clark_path(NS_FORMD_EXT, "IssueDate")
_ORIGINAL_COUNTRY: Final = clark_path(NS_FORMD_EXT, "IssuingCountryCode")
_COMMON_ADDRESS: Final = clark_path(NS_COMMON, "Address")
_EXHIBITION_ADDRESS: Final = clark_path(NS_FORMD_EXT, "Address")
_ADDRESS_COUNTRY: Final = clark_path(NS_COMMON, "CountryCode")
_TAGS: Final = (
    clark_path(NS_FORMD, "IssueDateTime"),
    clark_path(NS_FORMD, "ID"),
    clark_path(NS_FORMD, "CountryCode"),
    clark_path(NS_FORMD, "SequenceNumeric"),
    *(
        clark_path(NS_FORMD_EXT, name)
        for name in (
            "CertificateFlags",
            "OriginCriterionCode",
            "FOBValueAmount",
            "BackToBackOriginalReference",
            "ThirdCountryInvoicingParty",
            "Exhibition",
            "DeclarationDate",
            "DepartureDate",
            "CertifiedTrueCopyIndicator",
        )
    ),
    clark_path(NS_FORMD, "Exporter"),
)
# Positions in _TAGS, for a cheap dispatch in the hot loop below.
_ISSUE, _ID, _COUNTRY, _SEQ, _FLAGS, _CRITERION, _FOB, _B2B, _TCI, _EXHIBITION, _DECLARED, _DEP = (
    range(12)
)
_TRUE_COPY, _EXPORTER = 12, 13
_KIND: Final = {tag: kind for kind, tag in enumerate(_TAGS)}


@dataclass(slots=True)
class _Item:
    """One goods item's facts (filled while the pass walks through the item)."""

    seq_el: etree._Element
    seq: str
    hs_el: etree._Element | None = None
    hs: str = ""
    country_el: etree._Element | None = None
    country: str = ""
    criterion_el: etree._Element | None = None
    criterion: str = ""
    fob: bool = False

    @property
    def el(self) -> etree._Element:
        """The goods item element (looked up only when a finding names it)."""
        parent = self.seq_el.getparent()
        assert parent is not None  # noqa: S101  (SequenceNumeric is always inside its item)
        return parent


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
    true_copy: etree._Element | None = None
    exporter: etree._Element | None = None
    invoice_dates: list[etree._Element] = field(default_factory=list)
    originals: list[etree._Element] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)


def _collect(root: etree._Element) -> _FormD:  # noqa: PLR0912  (one branch per tag)
    """One pass over the tags the rules need; the XSD fixes their order and parents."""
    facts = _FormD()
    items = facts.items
    item: _Item | None = None
    kinds = _KIND
    for el in root.iter(_TAGS):
        kind = kinds[el.tag]
        if kind == _SEQ:
            item = _Item(seq_el=el, seq=(el.text or "").strip())
            items.append(item)
        elif item is not None:  # inside the goods items (they come last)
            if kind == _ID:  # Commodity/Classification/ID is an item's only fd:ID
                item.hs_el, item.hs = el, text(el)
            elif kind == _COUNTRY:  # Origin/CountryCode
                item.country_el, item.country = el, text(el)
            elif kind == _CRITERION:
                item.criterion_el, item.criterion = el, text(el)
            elif kind == _FOB:
                item.fob = True
        elif kind == _ID:
            if el.getparent().tag == _EXPORT_COUNTRY:  # type: ignore[union-attr]
                facts.exporting = el
        elif kind == _COUNTRY:
            facts.importing = el  # Destination/CountryCode
        elif kind == _ISSUE:
            if facts.issue is None:  # Declaration/IssueDateTime precedes Invoice/IssueDateTime
                facts.issue = el
            else:
                facts.invoice_dates.append(el)
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
        elif kind == _TRUE_COPY:
            facts.true_copy = el
        elif kind == _EXPORTER:
            facts.exporter = el
    return facts


_FLAG_NAMES: Final = {
    clark_path(NS_FORMD_EXT, f"{name}Indicator"): name
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
_TRUE: Final = frozenset({"true", "1"})


def _flags(flags_el: etree._Element | None) -> dict[str, bool]:
    """Box 13 tick boxes by name (``BackToBack``, ``IssuedRetroactively`` ...)."""
    if flags_el is None:
        return {}
    names = _FLAG_NAMES
    return {names.get(el.tag, ""): (el.text or "").strip() in _TRUE for el in flags_el}


# --- goods items: Boxes 7, 8, 9 and 11 ------------------------------------------------------

_CTC = r"(CC|CTH|CTSH)"
_PCT = r"(\d{1,3}(?:\.\d{1,2})?) ?%"
_SIMPLE_RE: Final = re.compile(rf"(?:WO|SP|{_CTC})")
# "40%", "RVC 40%", "RVC40%" alike (Note 3's examples), optionally after a tariff shift.
_RVC_RE: Final = re.compile(rf"(?:{_CTC} ?\+ ?)?(?:RVC ?)?{_PCT}")
_PC_RE: Final = re.compile(rf"PC ?{_PCT}")
_CRITERIA_HINT: Final = (
    "Enter the criterion as in Overleaf Note 3: WO, CC, CTH, CTSH, SP, a "
    "percentage such as 40% (or RVC 40%), a combination such as CTSH + 35%, or PC 25%."
)


class _Criterion(NamedTuple):
    """A Box 8 criterion, read once per distinct text."""

    code: str  # upper case, single spaces
    value: float | None  # the percentage of an RVC or PC criterion
    partial: bool  # "PC x%"
    well_formed: bool
    tariff_shift: bool  # CC, CTH or CTSH, alone or in a combination
    combined: bool  # "CTSH + x%"


@functools.lru_cache(maxsize=256)
def _classify(criterion: str) -> _Criterion:
    """Cached: a certificate's hundreds of goods items share a handful of criteria."""
    code = " ".join(criterion.upper().split())
    value: float | None = None
    shift = False
    partial = (match := _PC_RE.fullmatch(code)) is not None
    if match is not None:
        value = float(match.group(1))
    elif (match := _RVC_RE.fullmatch(code)) is not None:
        value = float(match.group(2))
        shift = match.group(1) is not None
    combined = shift
    simple = False
    if value is None and (match := _SIMPLE_RE.fullmatch(code)) is not None:
        simple, shift = True, match.group(1) is not None
    well_formed = (simple or value is not None) and (value or 0) <= 100
    return _Criterion(code, value, partial, well_formed, shift, combined)


def _criterion(item: _Item, fob_needed: bool) -> Iterator[Finding]:
    """Box 8 format and threshold, and Box 9 FOB when RVC/PC applies (KH, ID or LA)."""
    el = item.criterion_el
    code, value, partial, well_formed, _, combined = _classify(item.criterion)
    if partial and value is not None and not PC_MINIMUM <= value < RVC_THRESHOLD:
        yield PC_RANGE.finding(
            el,
            f"the partial cumulation criterion '{code}' needs a regional value "
            "content of at least 20% and below 40%.",
            "From 40% give the percentage "
            "alone (e.g. 40%); below 20% partial cumulation does not apply.",
            item=item.seq,
        )
    if not well_formed:
        yield CRITERION_FORMAT.finding(
            el,
            f"the origin criterion '{item.criterion}' is not one of WO, CC, CTH, CTSH, SP, a "
            "percentage (e.g. 40%), a combination such as 'CTSH + 35%', or 'PC x%'.",
            _CRITERIA_HINT,
            item=item.seq,
        )
        return
    if (
        value is not None
        and not partial
        and (value == 0 or (not combined and value < RVC_THRESHOLD))
    ):
        yield CRITERION_BELOW_THRESHOLD.finding(
            el,
            f"the origin criterion '{code}' cannot confer ASEAN origin: a regional value "
            "content alone must be at least 40% (ATIGA Art. 28), and 0% proves nothing.",
            "If ASEAN content of 20% to below 40% was accumulated, write 'PC x%' and tick "
            "'Partial Cumulation' (ATIGA Art. 30(2), Note 3); otherwise give the criterion "
            "the goods actually meet (e.g. CTH, or 40%).",
            item=item.seq,
        )
    if value is not None and fob_needed and not item.fob:
        yield FOB_MISSING.finding(
            item.el,
            f"the origin criterion '{code}' is a regional value content and the "
            "goods are exported from or imported into Cambodia, Indonesia or Lao PDR, so the "
            "FOB value must be shown.",
            'Add FOBValueAmount with its currency, e.g. currencyID="USD".',
            item=item.seq,
        )


def _item_rules(item: _Item, fob_needed: bool) -> Iterator[Finding]:
    if item.country not in asean_members():
        yield ORIGIN_NOT_MEMBER.finding(
            item.country_el,
            f"the country of origin {item.country} is not an ASEAN "
            "Member State; ATIGA origin is ASEAN origin.",
            "Give the Member State where the goods were produced.",
            item=item.seq,
        )
    yield from _criterion(item, fob_needed)


def _origin_rules(facts: _FormD, flags: dict[str, bool]) -> Iterator[Finding]:
    """Box 11 origin per item: the exporting Member State, or on a back-to-back Form D the
    country of an original Proof of Origin (Class 5 and 6 of issue 17)."""
    exporting = text(facts.exporting)
    if flags.get("BackToBack"):
        allowed = {text(child(el, _ORIGINAL_COUNTRY)) for el in facts.originals} - {""}
        if not allowed:  # back-to-back-original-missing/-incomplete already say why
            return
        for item in facts.items:
            if item.country in asean_members() and item.country not in allowed:
                yield B2B_ORIGIN.finding(
                    item.country_el,
                    f"the goods are given {item.country} origin, but the original Proof(s) "
                    f"of Origin were issued by {', '.join(sorted(allowed))}; a back-to-back "
                    "Form D keeps the origin the original certified (Rule 11).",
                    "Give the country of origin shown on the original Proof of Origin.",
                    item=item.seq,
                )
        return
    for item in facts.items:
        if item.country in asean_members() and item.country != exporting:
            yield ORIGIN_NOT_EXPORTING.finding(
                item.country_el,
                f"the goods are given {item.country} origin, but this Form D is issued in "
                f"{exporting}; a Form D certifies the origin of the exporting Member State, "
                "and accumulation does not change that.",
                f"Goods of {item.country} origin need a Form D from {item.country}, or a "
                "back-to-back Form D based on it (Rule 11).",
                item=item.seq,
            )


def _fob_and_de_minimis(
    facts: _FormD, flags: dict[str, bool], fob_needed: bool | None
) -> Iterator[Finding]:
    """Box 9 FOB only where required (Rule 25; ``None``: countries unsettled, not checked),
    and Box 13 De Minimis only with a tariff shift (ATIGA Art. 33)."""
    shown = [
        item
        for item in facts.items
        if fob_needed is not None
        and item.fob
        and not (fob_needed and _classify(item.criterion).value is not None)
    ]
    if shown and not flags.get("BackToBack"):
        first = shown[0]
        yield FOB_NOT_REQUIRED.finding(
            first.el,
            f"a FOB value is shown on {len(shown)} goods item(s) (first: item {first.seq}) "
            "where no rule requires it.",
            "Rule 25: the FOB value 'shall only' be shown where a regional value content "
            "criterion is used and the goods are exported from or imported into Cambodia, "
            "Indonesia or Lao PDR. Check with the issuing authority whether to remove it.",
        )
    if flags.get("DeMinimis") and not any(
        _classify(item.criterion).tariff_shift for item in facts.items
    ):
        yield DE_MINIMIS_NO_CTC.finding(
            facts.flags_el,
            "'De Minimis' is ticked but no goods item claims a change in tariff "
            "classification (CC, CTH or CTSH).",
            "ATIGA Art. 33: de minimis relieves only a change-in-tariff-classification "
            "criterion. Untick 'De Minimis', or give the tariff-shift criterion met.",
        )


# --- dates: Boxes 3, 12 and 13 --------------------------------------------------------------


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _issue_dates(facts: _FormD, flags: dict[str, bool], now: datetime) -> Iterator[Finding]:
    """Box 3, 12 and 13: issue date against shipment (Rule 10) and against today."""
    issue = date.fromisoformat(text(facts.issue))
    latest = (now + timedelta(days=1)).date()  # a Member State's today may be UTC's tomorrow
    for el, what in ((facts.issue, "issue date"), (facts.declared, "exporter's declaration date")):
        if el is not None and date.fromisoformat(text(el)) > latest:
            yield DATE_IN_FUTURE.finding(
                el,
                f"the {what} {text(el)} lies in the future.",
                "Give the date the document was actually signed.",
            )
    departure = date.fromisoformat(text(facts.departure)) if facts.departure is not None else None
    grace = timedelta(days=ISSUE_GRACE_DAYS)
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
        elif issue <= departure + grace:
            yield RETRO_UNNEEDED.finding(
                facts.issue,
                f"'Issued Retroactively' is ticked, but the issue date {issue} is "
                f"within three days of the departure date {departure}.",
                "Rule 10(1) allows issue up to three days after the declared shipment date "
                "without the tick. Untick 'Issued Retroactively' in Box 13, or correct the "
                "dates.",
            )
    elif departure is not None and issue > departure + grace:
        yield ISSUED_AFTER_DEPARTURE.finding(
            facts.issue,
            f"the issue date {issue} is {(issue - departure).days} days after the "
            f"departure date {departure}; Rule 10(1) allows at most three days.",
            "If it was issued late because of an involuntary error, omission or other valid "
            "cause, tick 'Issued Retroactively' in Box 13 (Rule 10(2), up to one year).",
        )


def _document_dates(facts: _FormD, issue: date, now: datetime) -> Iterator[Finding]:
    """Box 10 invoice dates and the Box 11 declaration date against the Box 12 issue date."""
    for el in facts.invoice_dates:
        invoiced = date.fromisoformat(text(el))
        if abs(invoiced.year - issue.year) > 5:
            buddhist = abs(invoiced.year - BUDDHIST_ERA_OFFSET - issue.year) <= 1
            yield INVOICE_IMPLAUSIBLE.finding(
                el,
                f"the invoice date {invoiced} is not plausible for a Form D issued on {issue}"
                + (
                    f"; the year {invoiced.year} looks like a Buddhist-era year "
                    f"({invoiced.year - BUDDHIST_ERA_OFFSET} in the Gregorian calendar)."
                    if buddhist
                    else "."
                ),
                "Give the invoice date in the Gregorian calendar (YYYY-MM-DD).",
            )
        elif invoiced > issue:
            yield INVOICE_AFTER_ISSUE.finding(
                el,
                f"the invoice is dated {invoiced}, after the Form D was issued on {issue}.",
                "The issuing authority certifies the invoice it has seen: check the invoice "
                "date and the issue date.",
            )
    if facts.declared is not None:
        declared = date.fromisoformat(text(facts.declared))
        # a declaration dated in the future already has date-in-future
        if issue < declared <= (now + timedelta(days=1)).date():
            yield DECLARATION_AFTER_ISSUE.finding(
                facts.declared,
                f"the exporter's declaration is dated {declared}, after the issuing "
                f"authority's certification on {issue}.",
                "The issuing authority certifies the exporter's declaration, so the "
                "declaration comes first: check both dates.",
            )


# --- Box 13 tick boxes against Boxes 2, 7 and 8 ---------------------------------------------


def _flag_rules(facts: _FormD, flags: dict[str, bool]) -> Iterator[Finding]:
    """Box 13 tick boxes against the data each one needs."""
    flags_el = facts.flags_el
    if flags.get("BackToBack") and not facts.originals:
        yield B2B_MISSING.finding(
            flags_el,
            "the Form D is marked 'Back-to-Back CO' but names no original Proof of Origin.",
            "Give the reference number and issue date of each original (Note 12).",
        )
    parts = ((_ORIGINAL_ID, "reference number"), (_ORIGINAL_ISSUE_DATE, "issue date")) + (
        ((_ORIGINAL_COUNTRY, "issuing country"),) if flags.get("BackToBack") else ()
    )
    for el in facts.originals:
        missing = [what for tag, what in parts if child(el, tag) is None]
        if missing:
            yield B2B_INCOMPLETE.finding(
                el,
                f"an original Proof of Origin is given without its {' and '.join(missing)}.",
                "A back-to-back Form D shows the reference number, issue date and issuing "
                "Member State of every original Proof of Origin (Rule 11, Note 12).",
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
    pc_items = sum(1 for item in facts.items if item.criterion.upper().startswith("PC"))
    if (pc_items > 0) != bool(flags.get("PartialCumulation")):
        state = "not ticked" if pc_items else "ticked"
        yield PC_FLAG.finding(
            flags_el,
            f"'Partial Cumulation' is {state} but {pc_items} goods item(s) use a "
            "'PC x%' criterion.",
            "Tick 'Partial Cumulation' exactly when an item uses 'PC x%'.",
        )


def _back_to_back(facts: _FormD, issue: date) -> Iterator[Finding]:
    """Rules 1(b), 11 and 14: each original comes from another Member State, predates the
    back-to-back Form D and is still valid (12 months) when it is issued."""
    exporting = text(facts.exporting)
    for el in facts.originals:
        country_el, date_el = child(el, _ORIGINAL_COUNTRY), child(el, _ORIGINAL_ISSUE_DATE)
        reference = text(child(el, _ORIGINAL_ID)) or "an original"
        if country_el is not None and text(country_el) == exporting:
            yield B2B_SAME_COUNTRY.finding(
                country_el,
                f"the original Proof of Origin {reference} was issued by {exporting}, the "
                "Member State issuing this back-to-back Form D.",
                "Rule 1(b): a back-to-back Form D is issued by an intermediate Member State "
                "on the basis of a Proof of Origin from the first exporting Member State.",
            )
        if date_el is None:
            continue
        original = date.fromisoformat(text(date_el))
        if original > issue:
            yield B2B_NOT_EARLIER.finding(
                date_el,
                f"the original Proof of Origin {reference} is dated {original}, after this "
                f"back-to-back Form D (issued {issue}).",
                "A back-to-back Form D is based on an original that already exists: check "
                "both dates.",
            )
        elif issue > _one_year_after(original):
            yield B2B_EXPIRED.finding(
                date_el,
                f"the original Proof of Origin {reference} was issued on {original} and was "
                f"no longer valid on {issue}, when this back-to-back Form D was issued.",
                "Rules 11 and 14: a Proof of Origin is valid for 12 months from its issue; a "
                "back-to-back Form D must be issued within the validity of the (earliest) "
                "original.",
            )


def _parties(facts: _FormD, *, settled: bool) -> Iterator[Finding]:
    """Box 1 exporter address, Box 2 exhibition place (Rule 22), Box 12 true copy."""
    exporting = text(facts.exporting)
    country_el = child(child(facts.exporter, _COMMON_ADDRESS), _ADDRESS_COUNTRY)
    if settled and country_el is not None and text(country_el) != exporting:
        yield EXPORTER_ABROAD.finding(
            country_el,
            f"the exporter's address is in {text(country_el)}, but the Form D is issued in "
            f"{exporting}.",
            "The exporter (which may be the manufacturer or producer, Note 7) ships from the "
            "exporting Member State; check the address, or whether the Form D should be "
            "issued elsewhere.",
        )
    place_el = child(child(facts.exhibition, _EXHIBITION_ADDRESS), _ADDRESS_COUNTRY)
    if place_el is not None and (
        text(place_el) not in asean_members() or text(place_el) == exporting
    ):
        yield EXHIBITION_COUNTRY.finding(
            place_el,
            f"the exhibition is held in {text(place_el)}, which is not another ASEAN Member State.",
            "Rule 22: the exhibition tick is for goods sent from the exporting Member State "
            "to an exhibition in another Member State.",
        )
    if facts.true_copy is not None and text(facts.true_copy) in _TRUE:
        yield CERTIFIED_TRUE_COPY.finding(
            facts.true_copy,
            "this e-Form D is marked 'Certified True Copy', which applies only to a paper "
            "Form D that was lost (Rule 12; Rule 26(2)).",
            "To correct an e-Form D, issue a replacement (function code 5 with "
            "ReferencedMessageID, Rule 29(4)); to issue it again, re-issue it (Rule 29(1)).",
        )


def form_d_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """Every Form D rule over an XSD-valid ``root`` whose header is ``h``."""
    facts = _collect(root)
    yield from country_rules(h, facts.exporting, facts.importing, boxed=True)
    # The origin, address and FOB rules measure against the exporting and importing
    # countries; when those disagree with the header, the country finding is the one to act on.
    settled = (text(facts.exporting), text(facts.importing)) == (h.sender, h.receiver)
    fob_needed = not {text(facts.exporting), text(facts.importing)}.isdisjoint(FOB_COUNTRIES)
    for item in facts.items:
        yield from _item_rules(item, fob_needed and settled)
    yield from _code_list_rules(
        root,
        facts.items,
        h,
        issue=facts.issue,
        exporting=facts.exporting,
        importing=facts.importing,
    )
    flags = _flags(facts.flags_el)
    issue = date.fromisoformat(text(facts.issue))
    if settled:
        yield from _origin_rules(facts, flags)
    yield from _fob_and_de_minimis(facts, flags, fob_needed if settled else None)
    yield from _issue_dates(facts, flags, now)
    yield from _document_dates(facts, issue, now)
    yield from _flag_rules(facts, flags)
    if flags.get("BackToBack"):
        yield from _back_to_back(facts, issue)
    yield from _parties(facts, settled=settled)
