"""The certified-exporter register (ASEAN-wide Self-Certification) as data, and the checks that
need it: what a register update says, what the register said on a given day, and whether an
Origin Declaration agrees with it (OCP Rule 2(6)).

Pure: no clock, no I/O. The shells read a country's history from the journal
(``Journal.register_history``) and pass it in; the update documents themselves are checked by
``gateway.core.rules.self_certification`` (what needs no history) and ``update_findings`` here
(what does).

How the history is read (our reading of Rule 12D, which asks only that changes go in
"immediately"): entries apply in order of their effective date, then in the order they were
recorded. GRANT creates a record; AMEND replaces it whole (and lifts a suspension); SUSPEND
keeps the record but it is not honoured until the next AMEND; WITHDRAW ends it for good.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from lxml import etree

from gateway.core.envelope import NS_CE_REGISTER, NS_COMMON, NS_ORIGIN_DECLARATION
from gateway.core.envelope import first_child as child
from gateway.core.rule_catalogue import (
    CE_AUTHORISATION_EXISTS,
    CE_AUTHORISATION_UNKNOWN,
    CE_AUTHORISATION_WITHDRAWN,
    OD_AUTHORISATION_NOT_VALID,
    OD_EXPORTER_NAME_DIFFERS,
    OD_EXPORTER_NOT_REGISTERED,
    OD_IMPORT_AFTER_VALIDITY,
    OD_PRODUCT_NOT_AUTHORISED,
    OD_SIGNATORY_NOT_REGISTERED,
    OD_VALIDITY_MONTHS,
)
from gateway.errors import Finding

CERTIFIED_EXPORTERS: Final = "certified-exporter"
"""The register name the journal keeps certified-exporter entries under."""

GRANT, AMEND, SUSPEND, WITHDRAW = "GRANT", "AMEND", "SUSPEND", "WITHDRAW"

ACTIVE, SUSPENDED, WITHDRAWN = "active", "suspended", "withdrawn"


def _cr(name: str) -> str:
    return f"{{{NS_CE_REGISTER}}}{name}"


def _od(name: str) -> str:
    return f"{{{NS_ORIGIN_DECLARATION}}}{name}"


def _cm(name: str) -> str:
    return f"{{{NS_COMMON}}}{name}"


def _text(el: etree._Element | None) -> str:
    return "" if el is None or el.text is None else " ".join(el.text.split())


def required(el: etree._Element | None, what: str) -> etree._Element:
    """``el``, which the XSD guarantees; a ValueError names ``what`` if it is missing anyway."""
    if el is None:
        raise ValueError(f"{what} is missing: the document did not pass its XSD")
    return el


def same_name(a: str, b: str) -> bool:
    """Names compared as an officer would: case and spacing do not matter."""
    return " ".join(a.upper().split()) == " ".join(b.upper().split())


# --- the record and the history -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Product:
    """An authorised product: its HS (6 digits) or AHTN (8 digits) code and description."""

    code: str
    description: str

    def covers(self, code: str) -> bool:
        """True when a declared HS/AHTN ``code`` falls under this authorised product.

        A 6-digit HS authorisation covers every AHTN line under it; an 8-digit AHTN
        authorisation covers only that line (and a 6-digit declaration of its heading, which
        names no finer line).
        """
        return code.startswith(self.code) or self.code.startswith(code)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExporterRecord:
    """What the register holds about one certified exporter (Rule 2(4)(a)-(e))."""

    authorisation_id: str
    name: str
    exporter_id: str | None
    issue_date: date
    expiry_date: date
    products: tuple[Product, ...]
    signatories: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """The record as JSON (the journal stores it so; the API shows it so)."""
        return {
            "authorisation_id": self.authorisation_id,
            "name": self.name,
            "exporter_id": self.exporter_id,
            "issue_date": self.issue_date.isoformat(),
            "expiry_date": self.expiry_date.isoformat(),
            "products": [{"code": p.code, "description": p.description} for p in self.products],
            "signatories": list(self.signatories),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ExporterRecord:
        """The record ``to_json`` wrote."""
        products = data["products"]
        signatories = data["signatories"]
        if not isinstance(products, list) or not isinstance(signatories, list):
            raise TypeError("a register record needs product and signatory lists")
        return cls(
            authorisation_id=str(data["authorisation_id"]),
            name=str(data["name"]),
            exporter_id=None if data.get("exporter_id") is None else str(data["exporter_id"]),
            issue_date=date.fromisoformat(str(data["issue_date"])),
            expiry_date=date.fromisoformat(str(data["expiry_date"])),
            products=tuple(
                Product(code=str(p["code"]), description=str(p["description"])) for p in products
            ),
            signatories=tuple(str(s) for s in signatories),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AeoRecord:
    """One Authorised Economic Operator as its customs administration notified it."""

    aeo_id: str
    name: str
    roles: tuple[str, ...]
    valid_from: date
    valid_to: date
    status: str  # VALID, SUSPENDED, REVOKED
    reason: str | None

    def valid_on(self, day: date) -> bool:
        """VALID, and ``day`` within its validity."""
        return self.status == "VALID" and self.valid_from <= day <= self.valid_to

    def to_json(self) -> dict[str, object]:
        """The record as JSON (journal and API)."""
        return {
            "aeo_id": self.aeo_id,
            "name": self.name,
            "roles": list(self.roles),
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
            "status": self.status,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> AeoRecord:
        """The record ``to_json`` wrote."""
        roles = data["roles"]
        if not isinstance(roles, list):
            raise TypeError("an AEO record needs a list of roles")
        return cls(
            aeo_id=str(data["aeo_id"]),
            name=str(data["name"]),
            roles=tuple(str(r) for r in roles),
            valid_from=date.fromisoformat(str(data["valid_from"])),
            valid_to=date.fromisoformat(str(data["valid_to"])),
            status=str(data["status"]),
            reason=None if data.get("reason") is None else str(data["reason"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterEntry:
    """One update of one record in a country's register, as the journal keeps it.

    ``entry_id`` is the update document's own number: the same update sent to several
    partners is one entry. ``record`` is the whole record after a GRANT or AMEND, None after
    SUSPEND or WITHDRAW. ``message_id`` is the message that brought it.
    """

    register: str
    country: str
    record_key: str
    entry_id: str
    action: str
    effective_date: date
    record: ExporterRecord | AeoRecord | None
    reason: str | None
    message_id: str
    recorded_at: datetime | None = None

    def body(self) -> str:
        """The entry's content as the journal's JSON column."""
        return json.dumps(
            {
                "record": None if self.record is None else self.record.to_json(),
                "reason": self.reason,
            },
            sort_keys=True,
        )

    @staticmethod
    def parse_body(
        register: str, body: str
    ) -> tuple[ExporterRecord | AeoRecord | None, str | None]:
        """``(record, reason)`` from what ``body`` wrote for ``register``."""
        data = json.loads(body)
        found = data.get("record")
        reason = data.get("reason")
        record: ExporterRecord | AeoRecord | None = None
        if found is not None:
            kind = ExporterRecord if register == CERTIFIED_EXPORTERS else AeoRecord
            record = kind.from_json(found)
        return record, None if reason is None else str(reason)

    def to_json(self) -> dict[str, object]:
        """The entry for the API: who changed what, when, why."""
        return {
            "entry_id": self.entry_id,
            "action": self.action,
            "effective_date": self.effective_date.isoformat(),
            "country": self.country,
            "record_key": self.record_key,
            "record": None if self.record is None else self.record.to_json(),
            "reason": self.reason,
            "message_id": self.message_id,
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """A record as the register stood on a day: the record, its status and since when."""

    record: ExporterRecord
    status: str
    since: date

    def valid_on(self, day: date) -> bool:
        """Active, and ``day`` within the authorisation's issue and expiry dates."""
        return self.status == ACTIVE and self.record.issue_date <= day <= self.record.expiry_date

    def to_json(self) -> dict[str, object]:
        """The standing for the API."""
        return {"status": self.status, "since": self.since.isoformat(), **self.record.to_json()}


def standing_on(entries: Iterable[RegisterEntry], key: str, day: date) -> Standing | None:
    """The record ``key`` as the register stood at the end of ``day``; None if not yet granted.

    ``entries`` are in recording order (as the journal returns them); they apply in order of
    effective date, ties in recording order.
    """
    return standing_with_entry(entries, key, day)[0]


def standing_with_entry(
    entries: Iterable[RegisterEntry], key: str, day: date
) -> tuple[Standing | None, RegisterEntry | None]:
    """``standing_on`` and the entry that last changed it (the update a check relied on)."""
    own = [e for e in entries if e.record_key == key and e.effective_date <= day]
    own.sort(key=lambda e: e.effective_date)  # stable: recording order within a day
    standing: Standing | None = None
    deciding: RegisterEntry | None = None
    for entry in own:
        before = standing
        if entry.action in (GRANT, AMEND) and isinstance(entry.record, ExporterRecord):
            if standing is not None and standing.status == WITHDRAWN and entry.action == AMEND:
                continue
            standing = Standing(record=entry.record, status=ACTIVE, since=entry.effective_date)
        elif standing is not None and entry.action == SUSPEND and standing.status == ACTIVE:
            standing = Standing(
                record=standing.record, status=SUSPENDED, since=entry.effective_date
            )
        elif standing is not None and entry.action == WITHDRAW:
            standing = Standing(
                record=standing.record, status=WITHDRAWN, since=entry.effective_date
            )
        if standing is not before:
            deciding = entry
    return standing, deciding


def register_on(entries: Sequence[RegisterEntry], day: date) -> dict[str, Standing]:
    """Every record of a country's register as it stood on ``day``, by authorisation code."""
    keys = sorted({e.record_key for e in entries})
    found = {key: standing_on(entries, key, day) for key in keys}
    return {key: s for key, s in found.items() if s is not None}


# --- reading a register update ----------------------------------------------------------------


def read_update(root: etree._Element, *, message_id: str) -> RegisterEntry:
    """The register entry an XSD-valid certified-exporter register update carries."""
    update = required(child(root, _cr("Update")), "Update")
    exporter = required(child(update, _cr("CertifiedExporter")), "CertifiedExporter")
    key = _text(child(exporter, _cr("AuthorisationID")))
    action = _text(child(update, _cr("ActionCode")))
    reason = _text(child(update, _cr("Reason"))) or None
    record: ExporterRecord | None = None
    validity = child(exporter, _cr("Validity"))
    if action in (GRANT, AMEND) and validity is not None:
        record = ExporterRecord(
            authorisation_id=key,
            name=_text(child(exporter, _cr("Name"))),
            exporter_id=_text(child(exporter, _cr("ID"))) or None,
            issue_date=date.fromisoformat(_text(child(validity, _cr("IssueDate")))),
            expiry_date=date.fromisoformat(_text(child(validity, _cr("ExpiryDate")))),
            products=tuple(
                Product(
                    code=_text(p.find(f"{_cr('Classification')}/{_cr('ID')}")),
                    description=_text(child(p, _cr("Description"))),
                )
                for p in exporter.iterchildren(_cr("AuthorisedProduct"))
            ),
            signatories=tuple(
                _text(child(s, _cr("Name"))) for s in exporter.iterchildren(_cr("Signatory"))
            ),
        )
    return RegisterEntry(
        register=CERTIFIED_EXPORTERS,
        country=_text(child(update, _cr("IssuingCountryCode"))),
        record_key=key,
        entry_id=_text(child(update, _cr("ID"))),
        action=action,
        effective_date=date.fromisoformat(_text(child(update, _cr("EffectiveDate")))),
        record=record,
        reason=reason,
        message_id=message_id,
    )


def update_findings(
    root: etree._Element, entry: RegisterEntry, history: Sequence[RegisterEntry]
) -> tuple[Finding, ...]:
    """What the issuing country's history says of this update (history: its entries so far).

    A GRANT of a code granted and not withdrawn, an AMEND/SUSPEND/WITHDRAW of a code never
    granted, and an AMEND or SUSPEND of a withdrawn code are refused. The history is read as it
    stands on the update's effective date. A re-sent update (same entry id) is not checked again.
    """
    if any(e.entry_id == entry.entry_id and e.record_key == entry.record_key for e in history):
        return ()
    update = child(root, _cr("Update"))
    action_el = None if update is None else child(update, _cr("ActionCode"))
    standing = standing_on(history, entry.record_key, entry.effective_date)
    code = entry.record_key
    if entry.action == GRANT:
        if standing is not None and standing.status != WITHDRAWN:
            return (
                CE_AUTHORISATION_EXISTS.finding(
                    action_el,
                    f"authorisation {code} is already granted ({standing.status} since "
                    f"{standing.since.isoformat()}).",
                    "Send an AMEND to change the record, or give the new exporter its own "
                    "authorisation code.",
                ),
            )
        return ()
    if standing is None:
        return (
            CE_AUTHORISATION_UNKNOWN.finding(
                action_el,
                f"{entry.action} names authorisation {code}, which {entry.country} has not "
                f"granted on or before {entry.effective_date.isoformat()}.",
                "Send the GRANT first, or check the authorisation code and effective date.",
            ),
        )
    if standing.status == WITHDRAWN and entry.action in (AMEND, SUSPEND):
        return (
            CE_AUTHORISATION_WITHDRAWN.finding(
                action_el,
                f"authorisation {code} was withdrawn on {standing.since.isoformat()}; it can "
                f"no longer be {'amended' if entry.action == AMEND else 'suspended'}.",
                "Grant a new authorisation instead.",
            ),
        )
    return ()


# --- the Origin Declaration against the register (Rule 2(6)) -----------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclarationFacts:
    """What the register check reads from an XSD-valid Origin Declaration."""

    exporting_country: str
    declared_on: date
    imported_on: date | None


def declaration_facts(root: etree._Element) -> DeclarationFacts:
    """The exporting country, declaration date and importation date of an Origin Declaration."""
    decl = required(child(root, _od("Declaration")), "Declaration")
    imported = _text(child(decl, _od("ImportationDate")))
    return DeclarationFacts(
        exporting_country=_text(child(decl, _od("ExportCountryCode"))),
        declared_on=date.fromisoformat(_text(child(decl, _od("IssueDate")))),
        imported_on=date.fromisoformat(imported) if imported else None,
    )


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months (the 29th-31st fall back to the month's end)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover - every month has a 28th


def declaration_findings(
    root: etree._Element, history: Sequence[RegisterEntry], *, today: date
) -> tuple[Finding, ...]:
    """Check an Origin Declaration against the exporting country's register history.

    The register is read as it stood on the declaration date. Refused (error): an
    authorisation code not in the register; an authorisation suspended, withdrawn, not yet
    issued or expired on that day; a signatory not registered for it; a goods item whose
    HS/AHTN code no authorised product covers. Warnings: the exporter's name differs from the
    register's; importation (the declared date, else ``today``) more than 12 months after the
    declaration date.
    """
    return tuple(_declaration_findings(root, history, today))


def _declaration_findings(
    root: etree._Element, history: Sequence[RegisterEntry], today: date
) -> Iterator[Finding]:
    facts = declaration_facts(root)
    decl = required(child(root, _od("Declaration")), "Declaration")
    exporter = required(child(decl, _od("CertifiedExporter")), "CertifiedExporter")
    code_el = child(exporter, _od("AuthorisationID"))
    code = _text(code_el)
    day = facts.declared_on
    imported = facts.imported_on or today
    if imported > add_months(day, OD_VALIDITY_MONTHS):
        imported_el = child(decl, _od("ImportationDate"))
        yield OD_IMPORT_AFTER_VALIDITY.finding(
            imported_el if imported_el is not None else child(decl, _od("IssueDate")),
            f"the goods are imported on {imported.isoformat()}, more than "
            f"{OD_VALIDITY_MONTHS} months after the declaration date {day.isoformat()}.",
            "Rule 14: an Origin Declaration is valid for 12 months; the importing customs "
            "decides whether to accept it (e.g. force majeure).",
        )
    standing = standing_on(history, code, day)
    if standing is None:
        yield OD_EXPORTER_NOT_REGISTERED.finding(
            code_el,
            f"CertifiedExporter/AuthorisationID {code} is not in {facts.exporting_country}'s "
            f"certified-exporter register on {day.isoformat()}.",
            "Rule 2(6): an Origin Declaration by an exporter not in the register is not "
            "honoured. Check the code, or ask the Competent Authority to register it.",
        )
        return
    if not standing.valid_on(day):
        record = standing.record
        if standing.status != ACTIVE:
            why = f"{standing.status} since {standing.since.isoformat()}"
        elif day < record.issue_date:
            why = f"not issued until {record.issue_date.isoformat()}"
        else:
            why = f"expired on {record.expiry_date.isoformat()}"
        yield OD_AUTHORISATION_NOT_VALID.finding(
            code_el,
            f"CertifiedExporter/AuthorisationID {code} was {why}, so not valid on the "
            f"declaration date {day.isoformat()}.",
            "Only an authorisation valid on the declaration date is honoured.",
        )
    name_el = child(exporter, _od("Name"))
    if not same_name(_text(name_el), standing.record.name):
        yield OD_EXPORTER_NAME_DIFFERS.finding(
            name_el,
            f"CertifiedExporter/Name '{_text(name_el)}' differs from the register's "
            f"'{standing.record.name}' for {code}.",
            "Check that the declaration names the exporter the authorisation was granted to.",
        )
    signatory_el = child(decl, _od("Signatory"))
    signatory_name_el = None if signatory_el is None else child(signatory_el, _od("Name"))
    signatory = _text(signatory_name_el)
    if not any(same_name(signatory, s) for s in standing.record.signatories):
        yield OD_SIGNATORY_NOT_REGISTERED.finding(
            signatory_name_el,
            f"Signatory/Name '{signatory}' is not a registered signatory of {code} on "
            f"{day.isoformat()}.",
            "Rule 2(6): only the signatories registered for the exporter may sign.",
        )
    for item in decl.iterchildren(_od("GoodsItem")):
        hs_el = item.find(f"{_od('Commodity')}/{_od('Classification')}/{_od('ID')}")
        hs = _text(hs_el)
        if not any(p.covers(hs) for p in standing.record.products):
            seq = _text(child(item, _od("SequenceNumeric")))
            yield OD_PRODUCT_NOT_AUTHORISED.finding(
                hs_el,
                f"goods item {seq}: GoodsItem/Commodity/Classification/ID {hs} is not among "
                f"the authorised products of {code} on {day.isoformat()}.",
                "Rule 2(6): an Origin Declaration for a product not in the register is not "
                "honoured. Ask the Competent Authority to amend the authorisation.",
            )
