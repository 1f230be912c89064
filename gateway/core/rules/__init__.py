"""Business rules: pure Python over a parsed tree that already passed its XSD.

Each rule has a stable code, a severity and, for Form D, the box it is about
(``gateway.core.rule_catalogue.CATALOGUE``). Rules trust the structure the XSD guarantees and never
read the clock: ``now`` is passed in. Findings carry the element's XPath and source line, a
message a trade officer understands and a hint on how to fix it.

Modules: ``common`` (reading the tree, the message header, exporting/importing countries),
``formd`` (Form D), ``acdd`` (ACDD), ``replies`` (Customs Response, Delivery receipt),
``retransmission`` (re-transmission request), ``conversations`` (rejection, clarification,
retroactive check, verification visit), ``register_queries`` (certified-exporter lookup, AEO status
query).
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from gateway.core.aeo import MraPlan, default_mra
from gateway.core.envelope import DocumentType as Doc
from gateway.core.rules.acdd import acdd_rules
from gateway.core.rules.aeo_status import acdd_aeo_rules, aeo_status_rules
from gateway.core.rules.common import header_rules, read_header
from gateway.core.rules.conversations import conversation_rules
from gateway.core.rules.formd import form_d_rules
from gateway.core.rules.register_queries import register_query_rules
from gateway.core.rules.replies import receipt_rules, response_rules
from gateway.core.rules.retransmission import retransmission_rules
from gateway.core.rules.self_certification import origin_declaration_rules, register_update_rules
from gateway.errors import Finding

__all__ = ["check_rules"]

_REGISTER_QUERIES = frozenset(
    {Doc.CE_LOOKUP_REQUEST, Doc.CE_LOOKUP_RESPONSE, Doc.AEO_STATUS_QUERY, Doc.AEO_STATUS_RESPONSE}
)


def check_rules(
    root: etree._Element, doc: Doc, *, now: datetime, mra: MraPlan | None = None
) -> tuple[Finding, ...]:
    """Run every business rule for ``doc`` over an XSD-valid ``root``, as of ``now``; the AEO
    rules read the MRA plan ``mra`` (None: the shipped one)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    plan = default_mra() if mra is None else mra
    header = read_header(root)
    findings = list(header_rules(doc, header, now))
    if doc is Doc.FORM_D:
        findings.extend(form_d_rules(root, header, now))
    elif doc is Doc.ACDD:
        findings.extend(acdd_rules(root, header, now))
        findings.extend(acdd_aeo_rules(root, plan))
    elif doc is Doc.CE_REGISTER_UPDATE:
        findings.extend(register_update_rules(root, header, now))
    elif doc is Doc.AEO_STATUS:
        findings.extend(aeo_status_rules(root, header, now, plan))
    elif doc is Doc.ORIGIN_DECLARATION:
        findings.extend(origin_declaration_rules(root, header, now))
    elif doc in _REGISTER_QUERIES:
        findings.extend(register_query_rules(root, doc, header, now, plan))
    elif doc is Doc.CUSTOMS_RESPONSE:
        findings.extend(response_rules(root, now))
    elif doc is Doc.RETRANSMISSION_REQUEST:
        findings.extend(retransmission_rules(root, now))
    elif doc is not Doc.DELIVERY_RECEIPT:
        findings.extend(conversation_rules(root, doc, now))
    else:
        findings.extend(receipt_rules(root, header, now))
    return tuple(findings)
