"""Form D rules: one pass over the tree collects the facts, then each rule reads them.

The pass is one ``root.iter(tags)`` (the walk runs in C and stops only at the ~20 elements the
rules need in the 5 KB sample); the texts the rules compare are read once, while collecting.
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

from gateway.core.codelists import (
    B2B_INCOMPLETE,
    B2B_MISSING,
    B2B_NOT_FLAGGED,
    CRITERION_FORMAT,
    DATE_IN_FUTURE,
    EXHIBITION_MISSING,
    FOB_COUNTRIES,
    FOB_MISSING,
    ISSUED_AFTER_DEPARTURE,
    MEMBER_STATE_SET,
    NS_FORMD_EXT,
    ORIGIN_NOT_MEMBER,
    PC_FLAG,
    PC_RANGE,
    RETRO_NO_DEPARTURE,
    RETRO_TOO_LATE,
    RETRO_UNNEEDED,
    TCI_MISSING,
    TCI_NOT_FLAGGED,
)
from gateway.core.envelope import NS_FORMD
from gateway.core.envelope import first_child as child
from gateway.core.rules.common import Header, country_rules, q, text
from gateway.core.rules.common import form_d_code_list_rules as _code_list_rules
from gateway.errors import Finding

# --- the facts ------------------------------------------------------------------------------

_EXPORT_COUNTRY: Final = q(NS_FORMD, "ExportCountry")
_ORIGINAL_ID: Final = q(NS_FORMD_EXT, "ID")
_ORIGINAL_ISSUE_DATE: Final = q(NS_FORMD_EXT, "IssueDate")
_TAGS: Final = (
    q(NS_FORMD, "IssueDateTime"),
    q(NS_FORMD, "ID"),
    q(NS_FORMD, "CountryCode"),
    q(NS_FORMD, "SequenceNumeric"),
    *(
        q(NS_FORMD_EXT, name)
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
# Positions in _TAGS, for a cheap dispatch in the hot loop below.
_ISSUE, _ID, _COUNTRY, _SEQ, _FLAGS, _CRITERION, _FOB, _B2B, _TCI, _EXHIBITION, _DECLARED, _DEP = (
    range(12)
)
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
    q(NS_FORMD_EXT, f"{name}Indicator"): name
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

_CTC = r"(?:CC|CTH|CTSH)"
_PCT = r"(\d{1,3}(?:\.\d{1,2})?) ?%"
_SIMPLE_RE: Final = re.compile(rf"(?:WO|SP|{_CTC})")
_RVC_RE: Final = re.compile(rf"(?:{_CTC} ?\+ ?)?{_PCT}")
_PC_RE: Final = re.compile(rf"PC ?{_PCT}")
_CRITERIA_HINT: Final = (
    "Enter the criterion as in Overleaf Note 3: WO, CC, CTH, CTSH, SP, a "
    "percentage such as 40%, a combination such as CTSH + 35%, or PC 25%."
)


class _Criterion(NamedTuple):
    """A Box 8 criterion, read once per distinct text."""

    code: str  # upper case, single spaces
    value: float | None  # the percentage of an RVC or PC criterion
    partial: bool  # "PC x%"
    well_formed: bool


@functools.lru_cache(maxsize=256)
def _classify(criterion: str) -> _Criterion:
    """Cached: a certificate's hundreds of goods items share a handful of criteria."""
    code = " ".join(criterion.upper().split())
    value: float | None = None
    partial = (match := _PC_RE.fullmatch(code)) is not None
    if match is not None or (match := _RVC_RE.fullmatch(code)) is not None:
        value = float(match.group(1))
    simple = value is None and _SIMPLE_RE.fullmatch(code) is not None
    return _Criterion(code, value, partial, (simple or value is not None) and (value or 0) <= 100)


def _criterion(item: _Item, fob_needed: bool) -> Iterator[Finding]:
    """Box 8 format, and Box 9 FOB when RVC/PC applies; ``fob_needed`` = KH, ID or LA."""
    el = item.criterion_el
    code, value, partial, well_formed = _classify(item.criterion)
    if partial and value is not None and not 20 <= value < 40:
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
    if item.country not in MEMBER_STATE_SET:
        yield ORIGIN_NOT_MEMBER.finding(
            item.country_el,
            f"the country of origin {item.country} is not an ASEAN "
            "Member State; ATIGA origin is ASEAN origin.",
            "Give the Member State where the goods were produced.",
            item=item.seq,
        )
    yield from _criterion(item, fob_needed)


# --- dates: Boxes 3, 12 and 13 --------------------------------------------------------------


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _issue_dates(facts: _FormD, flags: dict[str, bool], now: datetime) -> Iterator[Finding]:
    """Box 3, 12 and 13: issue date against departure (Rule 10) and against today."""
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
    for el in facts.originals:
        missing = [
            what
            for tag, what in (
                (_ORIGINAL_ID, "reference number"),
                (_ORIGINAL_ISSUE_DATE, "issue date"),
            )
            if child(el, tag) is None
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
    pc_items = sum(1 for item in facts.items if item.criterion.upper().startswith("PC"))
    if (pc_items > 0) != bool(flags.get("PartialCumulation")):
        state = "not ticked" if pc_items else "ticked"
        yield PC_FLAG.finding(
            flags_el,
            f"'Partial Cumulation' is {state} but {pc_items} goods item(s) use a "
            "'PC x%' criterion.",
            "Tick 'Partial Cumulation' exactly when an item uses 'PC x%'.",
        )


def form_d_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """Every Form D rule over an XSD-valid ``root`` whose header is ``h``."""
    facts = _collect(root)
    yield from country_rules(h, facts.exporting, facts.importing, boxed=True)
    fob_needed = not {text(facts.exporting), text(facts.importing)}.isdisjoint(FOB_COUNTRIES)
    for item in facts.items:
        yield from _item_rules(item, fob_needed)
    yield from _code_list_rules(
        root,
        facts.items,
        h,
        issue=facts.issue,
        exporting=facts.exporting,
        importing=facts.importing,
    )
    flags = _flags(facts.flags_el)
    yield from _issue_dates(facts, flags, now)
    yield from _flag_rules(facts, flags)
