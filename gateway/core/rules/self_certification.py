"""Rules of the self-certification documents that need no register history: the
certified-exporter register update and the Origin Declaration (issue 18 §4).

What needs the register as it stood on a day (Rule 2(6)) is in ``gateway.core.registers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from lxml import etree

from gateway.core.envelope import NS_CE_REGISTER, NS_ORIGIN_DECLARATION
from gateway.core.envelope import first_child as child
from gateway.core.registers import AMEND, GRANT, required, same_name
from gateway.core.rule_catalogue import (
    CE_ISSUER_NOT_SENDER,
    CE_RECORD_INCOMPLETE,
    CE_SIGNATORY_DUPLICATE,
    CE_VALIDITY_REVERSED,
    OD_CARRIER_DATE_MISMATCH,
    OD_CRITERION_FORMAT,
    OD_DATE_IN_FUTURE,
    OD_EXPORT_NOT_SENDER,
    OD_FOB_MISSING,
    OD_IMPORT_NOT_RECEIVER,
)
from gateway.core.rules.common import Header, clark_path, text
from gateway.core.rules.formd import _classify as classify_criterion
from gateway.errors import Finding

_UPDATE = clark_path(NS_CE_REGISTER, "Update")
_CR = NS_CE_REGISTER
_OD = NS_ORIGIN_DECLARATION


def register_update_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """The issuing country sends its own updates; a GRANT or AMEND carries a whole record
    (name, validity, at least one product and one signatory), validity in order, no
    signatory twice."""
    update = required(child(root, _UPDATE), "Update")
    country_el = child(update, clark_path(_CR, "IssuingCountryCode"))
    if text(country_el) != h.sender.upper():
        yield CE_ISSUER_NOT_SENDER.finding(
            country_el,
            f"IssuingCountryCode {text(country_el)} differs from the sender {h.sender.upper()}; "
            "each Competent Authority updates only its own country's register.",
            "Send the update from the issuing country's single window.",
        )
    action = text(child(update, clark_path(_CR, "ActionCode")))
    exporter = required(child(update, clark_path(_CR, "CertifiedExporter")), "CertifiedExporter")
    if action in (GRANT, AMEND):
        missing = [
            what
            for what, path in (
                ("Name", "Name"),
                ("Validity", "Validity"),
                ("AuthorisedProduct", "AuthorisedProduct"),
                ("Signatory", "Signatory"),
            )
            if child(exporter, clark_path(_CR, path)) is None
        ]
        if missing:
            yield CE_RECORD_INCOMPLETE.finding(
                exporter,
                f"a {action} must carry the whole record; CertifiedExporter lacks "
                f"{', '.join(missing)}.",
                "Give the exporter's name, the validity dates, every authorised product "
                "(HS/AHTN code) and every authorised signatory (Rule 2(4)).",
            )
    validity = child(exporter, clark_path(_CR, "Validity"))
    if validity is not None:
        issue_el = child(validity, clark_path(_CR, "IssueDate"))
        expiry_el = child(validity, clark_path(_CR, "ExpiryDate"))
        if date.fromisoformat(text(expiry_el)) < date.fromisoformat(text(issue_el)):
            yield CE_VALIDITY_REVERSED.finding(
                expiry_el,
                f"Validity/ExpiryDate {text(expiry_el)} is before IssueDate {text(issue_el)}.",
                "Check the two dates.",
            )
    seen: list[str] = []
    for signatory in exporter.iterchildren(clark_path(_CR, "Signatory")):
        name_el = child(signatory, clark_path(_CR, "Name"))
        name = text(name_el)
        if any(same_name(name, other) for other in seen):
            yield CE_SIGNATORY_DUPLICATE.finding(
                name_el,
                f"Signatory '{name}' is listed twice.",
                "List each authorised signatory once (at most ten).",
            )
        seen.append(name)


def origin_declaration_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """Countries against the header, dates, carrier document, origin criterion and FOB."""
    decl = required(child(root, clark_path(_OD, "Declaration")), "Declaration")
    export_el = child(decl, clark_path(_OD, "ExportCountryCode"))
    import_el = child(decl, clark_path(_OD, "ImportCountryCode"))
    exporting, importing = text(export_el), text(import_el)
    if exporting != h.sender.upper():
        yield OD_EXPORT_NOT_SENDER.finding(
            export_el,
            f"ExportCountryCode {exporting} differs from the sender {h.sender.upper()}.",
            "The exporting Member State's single window sends the Origin Declaration.",
        )
    if importing != h.receiver.upper():
        yield OD_IMPORT_NOT_RECEIVER.finding(
            import_el,
            f"ImportCountryCode {importing} differs from the receiver {h.receiver.upper()}.",
            "Address the message to the importing Member State.",
        )
    issue_el = child(decl, clark_path(_OD, "IssueDate"))
    issued = date.fromisoformat(text(issue_el))
    if issued > now.date():
        yield OD_DATE_IN_FUTURE.finding(
            issue_el,
            f"IssueDate {issued.isoformat()} is after today ({now.date().isoformat()}).",
            "An Origin Declaration is dated with its carrier document, which already exists.",
        )
    carrier = child(decl, clark_path(_OD, "CarrierDocument"))
    id_el = child(decl, clark_path(_OD, "ID"))
    carrier_id_el = child(carrier, clark_path(_OD, "ID"))
    carrier_date_el = child(carrier, clark_path(_OD, "IssueDate"))
    if text(id_el) != text(carrier_id_el) or text(issue_el) != text(carrier_date_el):
        yield OD_CARRIER_DATE_MISMATCH.finding(
            carrier,
            f"the declaration is {text(id_el)} of {text(issue_el)} but its carrier document "
            f"is {text(carrier_id_el)} of {text(carrier_date_el)}.",
            "Rule 12B(5)(6): the Origin Declaration's reference number and date are those of "
            "the carrier document (commercial invoice or the document replacing it).",
        )
    for item in decl.iterchildren(clark_path(_OD, "GoodsItem")):
        seq = text(child(item, clark_path(_OD, "SequenceNumeric")))
        criterion_el = child(item, clark_path(_OD, "OriginCriterionCode"))
        criterion = classify_criterion(text(criterion_el))
        if not criterion.well_formed:
            yield OD_CRITERION_FORMAT.finding(
                criterion_el,
                f"goods item {seq}: origin criterion '{text(criterion_el)}' is not one of "
                "WO, CC, CTH, CTSH, SP, x%, 'CTSH + x%' or 'PC x%'.",
                "Enter the criterion as Attachment 1, 2(iii) lists it.",
            )
        elif criterion.value is not None and child(item, clark_path(_OD, "FOBValueAmount")) is None:
            yield OD_FOB_MISSING.finding(
                criterion_el,
                f"goods item {seq}: criterion {criterion.code} is value-based, but no FOB "
                "value is given.",
                "Give FOBValueAmount with its currencyID (Attachment 1, 2(v)).",
            )
