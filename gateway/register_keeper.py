"""The register keeper: the shell around ``gateway.core.registers`` on the submission path.

A certified-exporter register update is checked against its issuing country's history and, once
journalled, kept as a register entry; an Origin Declaration is checked against the exporting
country's register as it stood on the declaration date (Rule 2(6)). Both run after the pure
ingest checks and before anything is journalled or queued, on the same path as every other
document: errors refuse the document (422 ``business-rule-violation`` with the findings),
warnings travel with it in the report.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from gateway.core.aeo import (
    AEO_REGISTER,
    MraPlan,
    acdd_aeo_findings,
    aeo_with_entry,
    declared_aeos,
    read_notification,
)
from gateway.core.envelope import NS_ORIGIN_DECLARATION, DocumentType
from gateway.core.envelope import first_child as child
from gateway.core.parsing import ParseLimits, parse
from gateway.core.pipeline import Accepted, with_findings
from gateway.core.registers import (
    CERTIFIED_EXPORTERS,
    declaration_facts,
    declaration_findings,
    read_update,
    required,
    standing_with_entry,
    update_findings,
)
from gateway.journal import Journal

_OD = NS_ORIGIN_DECLARATION
_AEO_PARTY = b"AEOMutualRecognitionParty"
REGISTER_ENTRY = "register-entry"
"""The link from a declaration to the register update it was read against."""


class RegisterKeeper:
    """Checks documents against the registers the journal keeps, and keeps register updates."""

    def __init__(self, journal: Journal, limits: ParseLimits, mra: MraPlan) -> None:
        self._journal = journal
        self._limits = limits
        self._mra = mra

    async def check(self, accepted: Accepted, *, now: datetime) -> Accepted:
        """``accepted`` with the register findings added, or raise the refusal they make."""
        doc = accepted.envelope.document_type
        if doc is DocumentType.CE_REGISTER_UPDATE:
            root = self._root(accepted)
            entry = read_update(root, message_id=accepted.envelope.message_id)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, entry.country, entry.record_key
            )
            found = update_findings(root, entry, history)
        elif doc is DocumentType.AEO_STATUS:
            return accepted  # nothing in its history can refuse a notification
        elif doc is DocumentType.ACDD:
            if _AEO_PARTY not in accepted.payload:  # most ACDDs: no second parse
                return accepted
            root = self._root(accepted)
            _, declared = declared_aeos(root)
            if not declared:
                return accepted
            registers = {
                country: await self._journal.register_history(AEO_REGISTER, country)
                for country in sorted({aeo.country for aeo in declared})
            }
            found = acdd_aeo_findings(root, registers, self._mra)
        elif doc is DocumentType.ORIGIN_DECLARATION:
            root = self._root(accepted)
            facts = declaration_facts(root)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, facts.exporting_country, _authorisation_of(root)
            )
            found = declaration_findings(root, history, today=now.date())
        else:
            return accepted
        return with_findings(accepted, found)

    async def keep(self, accepted: Accepted, *, at: datetime) -> None:
        """Keep a journalled register update or AEO notification as register entries (again
        is a no-op); link an Origin Declaration or an ACDD with AEO ids to the register updates
        it was read against (relation ``register-entry``)."""
        doc = accepted.envelope.document_type
        message_id = accepted.envelope.message_id
        if doc is DocumentType.CE_REGISTER_UPDATE:
            entries = [read_update(self._root(accepted), message_id=message_id)]
        elif doc is DocumentType.AEO_STATUS:
            entries = read_notification(self._root(accepted), message_id=message_id)
        else:
            for related in await self._relied_on(accepted):
                await self._journal.link(message_id, related, REGISTER_ENTRY, at=at)
            return
        for entry in entries:
            await self._journal.register_add(entry, at=at)

    async def _relied_on(self, accepted: Accepted) -> list[str]:
        """The messages of the register entries a declaration was read against."""
        doc = accepted.envelope.document_type
        found: list[str] = []
        if doc is DocumentType.ORIGIN_DECLARATION:
            root = self._root(accepted)
            facts = declaration_facts(root)
            key = _authorisation_of(root)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, facts.exporting_country, key
            )
            _, entry = standing_with_entry(history, key, facts.declared_on)
            found = [] if entry is None else [entry.message_id]
        elif doc is DocumentType.ACDD and _AEO_PARTY in accepted.payload:
            day, declared = declared_aeos(self._root(accepted))
            for aeo in declared:
                history = await self._journal.register_history(AEO_REGISTER, aeo.country)
                _, entry = aeo_with_entry(history, aeo.aeo_id, day)
                if entry is not None:
                    found.append(entry.message_id)
        return sorted(set(found))

    def _root(self, accepted: Accepted) -> etree._Element:
        return parse(accepted.payload, self._limits)


def _authorisation_of(root: etree._Element) -> str:
    decl = required(child(root, f"{{{_OD}}}Declaration"), "Declaration")
    exporter = required(child(decl, f"{{{_OD}}}CertifiedExporter"), "CertifiedExporter")
    code = child(exporter, f"{{{_OD}}}AuthorisationID")
    return "" if code is None or code.text is None else code.text.strip()
