"""Rules of the AEO status notification, and the ACDD's declared AEO ids that need no register
history (issue 18 §5). The register checks are ``gateway.core.aeo.acdd_aeo_findings``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from lxml import etree

from gateway.core.aeo import MraPlan, acdd_aeo_findings
from gateway.core.envelope import NS_AEO_STATUS
from gateway.core.envelope import first_child as child
from gateway.core.registers import required
from gateway.core.rule_catalogue import (
    AEO_ISSUER_NOT_SENDER,
    AEO_NOTIFICATION_ID_FORMAT,
    AEO_RECEIVER_NOT_PARTNER,
    AEO_VALIDITY_REVERSED,
)
from gateway.core.rules.common import Header, clark_path, text
from gateway.errors import Finding

_AE = NS_AEO_STATUS


def aeo_status_rules(
    root: etree._Element, h: Header, now: datetime, plan: MraPlan
) -> Iterator[Finding]:
    """Issuer is the sender; both ends are MRA partners on the notification date; each id has
    the issuer's format; validity in order."""
    note = required(child(root, clark_path(_AE, "Notification")), "Notification")
    country_el = child(note, clark_path(_AE, "IssuingCountryCode"))
    issuer = text(country_el)
    if issuer != h.sender.upper():
        yield AEO_ISSUER_NOT_SENDER.finding(
            country_el,
            f"IssuingCountryCode {issuer} differs from the sender {h.sender.upper()}.",
            "Each customs administration notifies only its own AEOs.",
        )
    day = date.fromisoformat(text(child(note, clark_path(_AE, "IssueDate"))))
    for end in (h.sender.upper(), h.receiver.upper()):
        if not plan.takes_part(end, day):
            yield AEO_RECEIVER_NOT_PARTNER.finding(
                h.el,
                f"{end} does not take part in the ASEAN AEO MRA on {day.isoformat()}; AEO "
                "records go only between MRA partners.",
                "Send the notification only to partners operational under the MRA "
                "(setting documents.mra_file; shipped: gateway/data/aeo.toml).",
            )
    for op in note.iterchildren(clark_path(_AE, "Operator")):
        id_el = child(op, clark_path(_AE, "ID"))
        if not plan.id_matches(issuer, text(id_el)):
            yield AEO_NOTIFICATION_ID_FORMAT.finding(
                id_el,
                f"AEO id {text(id_el)} does not have {issuer}'s AEO id format.",
                "Send the id as the issuing administration allots it.",
            )
        start = child(op, clark_path(_AE, "ValidFrom"))
        end_el = child(op, clark_path(_AE, "ValidTo"))
        if date.fromisoformat(text(end_el)) < date.fromisoformat(text(start)):
            yield AEO_VALIDITY_REVERSED.finding(
                end_el,
                f"AEO {text(id_el)}: ValidTo {text(end_el)} is before ValidFrom {text(start)}.",
                "Check the two dates.",
            )


def acdd_aeo_rules(root: etree._Element, plan: MraPlan) -> Iterator[Finding]:
    """The ACDD's AEO ids against the MRA plan only (no register): issuer and id format."""
    yield from acdd_aeo_findings(root, None, plan)
