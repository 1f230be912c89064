"""AEO status under the ASEAN AEO MRA (issue 18 §5): the MRA plan, the AEO registers the gateway
keeps per issuing country, and the checks of the AEO ids an ACDD declares.

Pure: the plan is data (``gateway/data/aeo.toml``); the history comes from the journal
(``register`` = ``aeo``, ``record_key`` = the AEO id). A SNAPSHOT notification is kept as one
marker entry (``record_key`` ``*``, no record: "everything before is void") plus one entry per
AEO it lists; a DELTA as one entry per AEO. Reading an id on a day folds, in order of notification
date, the markers and that id's entries: the last word wins, and a later snapshot without the id
removes it.

An AEO id that is unknown, suspended, revoked or out of validity on the declaration date is a
**warning** on the ACDD (no MRA benefit), never a refusal.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from lxml import etree

from gateway.core.envelope import NS_ACDD, NS_AEO_STATUS
from gateway.core.envelope import first_child as child
from gateway.core.registers import AeoRecord, RegisterEntry, required
from gateway.core.rule_catalogue import (
    AEO_ID_FORMAT,
    AEO_ISSUER_NOT_IN_MRA,
    AEO_NOT_FOUND,
    AEO_NOT_VALID,
)
from gateway.errors import Finding, SettingsError

AEO_REGISTER: Final = "aeo"
SNAPSHOT_MARKER: Final = "*"
SNAPSHOT, DELTA = "SNAPSHOT", "DELTA"


def _ae(name: str) -> str:
    return f"{{{NS_AEO_STATUS}}}{name}"


def _ac(name: str) -> str:
    return f"{{{NS_ACDD}}}{name}"


def _text(el: etree._Element | None) -> str:
    return "" if el is None or el.text is None else " ".join(el.text.split())


# --- the MRA plan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Participant:
    """A customs administration in the MRA from ``since``, and its AEO id pattern if known."""

    country: str
    since: date
    pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class MraPlan:
    """Who takes part in the ASEAN AEO MRA from when, and each country's AEO id pattern."""

    participants: Mapping[str, Participant]

    def takes_part(self, country: str, day: date) -> bool:
        """True when ``country`` is an operational MRA participant on ``day``."""
        found = self.participants.get(country)
        return found is not None and found.since <= day

    def id_matches(self, country: str, aeo_id: str) -> bool:
        """True when ``aeo_id`` has ``country``'s format (any id, when none is configured)."""
        found = self.participants.get(country)
        return found is None or found.pattern is None or bool(found.pattern.fullmatch(aeo_id))


def parse_mra(text: str) -> MraPlan:
    """The plan in TOML ``text`` (the format is documented in ``gateway/data/aeo.toml``)."""
    data: dict[str, Any] = tomllib.loads(text)
    participants: dict[str, Participant] = {}
    for entry in data.get("participant", []):
        since = entry["since"]
        if not isinstance(since, date):
            raise TypeError(f"participant {entry.get('country')}: since must be a date")
        pattern = entry.get("pattern")
        participants[str(entry["country"])] = Participant(
            country=str(entry["country"]),
            since=since,
            pattern=None if pattern is None else re.compile(str(pattern)),
        )
    return MraPlan(participants)


@functools.cache
def default_mra() -> MraPlan:
    """The plan shipped with the gateway (``gateway/data/aeo.toml``)."""
    return parse_mra(resources.files("gateway").joinpath("data", "aeo.toml").read_text("utf-8"))


def load_mra(path: str) -> MraPlan:
    """The plan in the TOML file at ``path`` (setting ``documents.mra_file``), or the shipped
    one for ``""``."""
    if not path:
        return default_mra()
    try:
        return parse_mra(Path(path).read_text("utf-8"))
    except (OSError, ValueError, TypeError, KeyError, re.error) as exc:
        raise SettingsError([f"documents.mra_file: {path}: {exc}"]) from None


# --- reading notifications and the history ------------------------------------------------------


def read_notification(root: etree._Element, *, message_id: str) -> list[RegisterEntry]:
    """The register entries an XSD-valid AEO status notification carries."""
    note = required(child(root, _ae("Notification")), "Notification")
    kind = _text(child(note, _ae("TypeCode")))
    country = _text(child(note, _ae("IssuingCountryCode")))
    entry_id = _text(child(note, _ae("ID")))
    issued = date.fromisoformat(_text(child(note, _ae("IssueDate"))))

    def entry(key: str, record: AeoRecord | None) -> RegisterEntry:
        return RegisterEntry(
            register=AEO_REGISTER,
            country=country,
            record_key=key,
            entry_id=entry_id,
            action=kind,
            effective_date=issued,
            record=record,
            reason=None if record is None else record.reason,
            message_id=message_id,
        )

    entries = [entry(SNAPSHOT_MARKER, None)] if kind == SNAPSHOT else []
    for op in note.iterchildren(_ae("Operator")):
        record = AeoRecord(
            aeo_id=_text(child(op, _ae("ID"))),
            name=_text(child(op, _ae("Name"))),
            roles=tuple(_text(r) for r in op.iterchildren(_ae("RoleCode"))),
            valid_from=date.fromisoformat(_text(child(op, _ae("ValidFrom")))),
            valid_to=date.fromisoformat(_text(child(op, _ae("ValidTo")))),
            status=_text(child(op, _ae("StatusCode"))),
            reason=_text(child(op, _ae("StatusReason"))) or None,
        )
        entries.append(entry(record.aeo_id, record))
    return entries


def aeo_on(entries: Sequence[RegisterEntry], aeo_id: str, day: date) -> AeoRecord | None:
    """``aeo_id``'s record in a country's register at the end of ``day``, or None.

    ``entries`` are the country's AEO entries in recording order.
    """
    return aeo_with_entry(entries, aeo_id, day)[0]


def aeo_with_entry(
    entries: Sequence[RegisterEntry], aeo_id: str, day: date
) -> tuple[AeoRecord | None, RegisterEntry | None]:
    """``aeo_on`` and the entry (notification) that decided it."""
    order = {e.entry_id: i for i, e in reversed(list(enumerate(entries)))}
    relevant = [
        e for e in entries if e.record_key in (aeo_id, SNAPSHOT_MARKER) and e.effective_date <= day
    ]
    relevant.sort(
        key=lambda e: (e.effective_date, order[e.entry_id], e.record_key != SNAPSHOT_MARKER)
    )
    found: AeoRecord | None = None
    deciding: RegisterEntry | None = None
    for e in relevant:
        found = e.record if isinstance(e.record, AeoRecord) else None
        deciding = e
    return found, deciding


# --- the AEO ids an ACDD declares ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclaredAeo:
    """One AEO id an ACDD declares, with its issuing country and element."""

    aeo_id: str
    country: str
    el: etree._Element


def declared_aeos(root: etree._Element) -> tuple[date, list[DeclaredAeo]]:
    """The ACDD's declaration date (issue date, else exit date) and its declared AEO ids."""
    decl = required(child(root, _ac("Declaration")), "Declaration")
    issued = _text(child(decl, _ac("IssueDateTime")))
    day = (
        datetime.fromisoformat(issued).date()
        if issued
        else date.fromisoformat(_text(child(decl, _ac("ExitDateTime"))))
    )
    found = [
        DeclaredAeo(
            aeo_id=_text(child(p, _ac("ID"))),
            country=_text(child(p, _ac("CountryCode"))),
            el=p,
        )
        for p in decl.iterchildren(_ac("AEOMutualRecognitionParty"))
    ]
    return day, found


def acdd_aeo_findings(
    root: etree._Element,
    registers: Mapping[str, Sequence[RegisterEntry]] | None,
    plan: MraPlan,
) -> tuple[Finding, ...]:
    """Warnings for the ACDD's AEO ids on its declaration date.

    With ``registers`` None, only what the plan decides: the issuer takes part in the MRA
    (``aeo-issuer-not-in-mra``) and the id has its format (``aeo-id-format``); the document
    rules run this. With ``registers`` (each issuing country's AEO entries), only the register
    checks (``aeo-not-found``, ``aeo-not-valid``) of the ids that passed the plan; the
    submission path runs this.
    """
    return tuple(_acdd_aeo_findings(root, registers, plan))


def _acdd_aeo_findings(
    root: etree._Element,
    registers: Mapping[str, Sequence[RegisterEntry]] | None,
    plan: MraPlan,
) -> Iterator[Finding]:
    day, declared = declared_aeos(root)
    no_benefit = "No ASEAN AEO MRA benefit applies to this id; the declaration itself stands."
    for aeo in declared:
        id_el = child(aeo.el, _ac("ID"))
        if not plan.takes_part(aeo.country, day):
            if registers is not None:
                continue
            yield AEO_ISSUER_NOT_IN_MRA.finding(
                aeo.el,
                f"AEO {aeo.aeo_id}: {aeo.country} does not take part in the ASEAN AEO MRA on "
                f"{day.isoformat()}.",
                no_benefit,
            )
            continue
        if not plan.id_matches(aeo.country, aeo.aeo_id):
            if registers is not None:
                continue
            yield AEO_ID_FORMAT.finding(
                id_el,
                f"AEO id {aeo.aeo_id} does not have {aeo.country}'s AEO id format.",
                no_benefit + " Check the id the partner gave.",
            )
            continue
        if registers is None:
            continue
        record = aeo_on(registers.get(aeo.country, ()), aeo.aeo_id, day)
        if record is None:
            yield AEO_NOT_FOUND.finding(
                id_el,
                f"AEO id {aeo.aeo_id} is not in {aeo.country}'s AEO register on {day.isoformat()}.",
                no_benefit,
            )
        elif not record.valid_on(day):
            why = (
                f"{record.status.lower()}" + (f" ({record.reason})" if record.reason else "")
                if record.status != "VALID"
                else f"valid only from {record.valid_from.isoformat()} to "
                f"{record.valid_to.isoformat()}"
            )
            yield AEO_NOT_VALID.finding(
                id_el,
                f"AEO id {aeo.aeo_id} ({record.name}) is {why} on {day.isoformat()}.",
                no_benefit,
            )
