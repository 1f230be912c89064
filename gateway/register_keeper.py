"""The register keeper: the shell around ``gateway.core.registers`` on the submission path.

A certified-exporter register update is checked against its issuing country's history and, once
journalled, kept as a register entry; an Origin Declaration is checked against the exporting
country's register as it stood on the declaration date (Rule 2(6)). Both run after the pure
ingest checks and before anything is journalled or queued, on the same path as every other
document: errors refuse the document (422 ``business-rule-violation`` with the findings),
warnings travel with it in the report. ``POST /v1/validate`` reports the same findings from the
same code (``add_findings``), against the registers as they stand now. Each check reads the
tree ingest parsed once (``Accepted.root``): the payload is never parsed a second time.
"""

from __future__ import annotations

from dataclasses import replace
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
from gateway.core.validation import ValidationReport
from gateway.errors import Finding
from gateway.journal import Journal

_OD = NS_ORIGIN_DECLARATION
REGISTER_ENTRY = "register-entry"
"""The link from a declaration to the register update it was read against."""


class RegisterKeeper:
    """Checks documents against the registers the journal keeps, and keeps register updates."""

    def __init__(self, journal: Journal, mra: MraPlan) -> None:
        self._journal = journal
        self._mra = mra

    async def check(self, accepted: Accepted, *, now: datetime) -> Accepted:
        """``accepted`` with the register findings added, or raise the refusal they make."""
        found = await self.findings(
            accepted.report, accepted.root, accepted.envelope.message_id, now=now
        )
        return with_findings(accepted, found)

    async def add_findings(
        self, report: ValidationReport, root: etree._Element, message_id: str, *, now: datetime
    ) -> ValidationReport:
        """``report`` with the register findings of ``root`` added (``POST /v1/validate``)."""
        found = await self.findings(report, root, message_id, now=now)
        return replace(report, rule_findings=report.rule_findings + found) if found else report

    async def findings(
        self, report: ValidationReport, root: etree._Element, message_id: str, *, now: datetime
    ) -> tuple[Finding, ...]:
        """The register findings of ``root`` (the document parsed once, by ingest), read
        against the registers as they stand now.

        The one code path of the register checks: submission (``check``) and ``POST
        /v1/validate`` (``add_findings``) both call it. A document that failed its XSD is not
        read (the rules trust the structure the XSD guarantees); neither is one without
        register checks.
        """
        if not report.schema_valid:
            return ()
        return await self._findings(report.document_type, root, message_id, now=now)

    async def _findings(
        self, doc: DocumentType, root: etree._Element, message_id: str, *, now: datetime
    ) -> tuple[Finding, ...]:
        if doc is DocumentType.CE_REGISTER_UPDATE:
            entry = read_update(root, message_id=message_id)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, entry.country, entry.record_key
            )
            return update_findings(root, entry, history)
        if doc is DocumentType.ACDD:
            _, declared = declared_aeos(root)
            if not declared:
                return ()
            registers = {
                country: await self._journal.register_history(AEO_REGISTER, country)
                for country in sorted({aeo.country for aeo in declared})
            }
            return acdd_aeo_findings(root, registers, self._mra)
        if doc is DocumentType.ORIGIN_DECLARATION:
            facts = declaration_facts(root)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, facts.exporting_country, _authorisation_of(root)
            )
            return declaration_findings(root, history, today=now.date())
        # An AEO status notification: nothing in its history can refuse it.
        return ()

    async def keep(self, accepted: Accepted, *, at: datetime) -> None:
        """Keep a journalled register update or AEO notification as register entries (again
        is a no-op); link an Origin Declaration or an ACDD with AEO ids to the register updates
        it was read against (relation ``register-entry``)."""
        doc = accepted.envelope.document_type
        message_id = accepted.envelope.message_id
        if doc is DocumentType.CE_REGISTER_UPDATE:
            entries = [read_update(accepted.root, message_id=message_id)]
        elif doc is DocumentType.AEO_STATUS:
            entries = read_notification(accepted.root, message_id=message_id)
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
            facts = declaration_facts(accepted.root)
            key = _authorisation_of(accepted.root)
            history = await self._journal.register_history(
                CERTIFIED_EXPORTERS, facts.exporting_country, key
            )
            _, entry = standing_with_entry(history, key, facts.declared_on)
            found = [] if entry is None else [entry.message_id]
        elif doc is DocumentType.ACDD:
            day, declared = declared_aeos(accepted.root)
            for aeo in declared:
                history = await self._journal.register_history(AEO_REGISTER, aeo.country)
                _, entry = aeo_with_entry(history, aeo.aeo_id, day)
                if entry is not None:
                    found.append(entry.message_id)
        return sorted(set(found))


def _authorisation_of(root: etree._Element) -> str:
    decl = required(child(root, f"{{{_OD}}}Declaration"), "Declaration")
    exporter = required(child(decl, f"{{{_OD}}}CertifiedExporter"), "CertifiedExporter")
    code = child(exporter, f"{{{_OD}}}AuthorisationID")
    return "" if code is None or code.text is None else code.text.strip()
