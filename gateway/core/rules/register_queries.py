"""Rules of the register lookups (issue 18 §4-5): the certified-exporter lookup request and
response, the AEO status query and response.

Who may send a response (the party asked, to the party that asked) is decided before
journalling by ``gateway.core.conversations``; what the register says is
``gateway.core.register_queries``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from lxml import etree

from gateway.core.aeo import MraPlan
from gateway.core.envelope import NS_AEO_QUERY, NS_CE_LOOKUP
from gateway.core.envelope import DocumentType as Doc
from gateway.core.envelope import first_child as child
from gateway.core.register_queries import EXPORTER, MATCH
from gateway.core.registers import required
from gateway.core.rule_catalogue import (
    AEO_QUERY_NOT_PARTNER,
    AEO_RESPONSE_INCONSISTENT,
    ANSWER_NOT_FROM_REGISTER_KEEPER,
    CE_LOOKUP_EXPORTER_MISSING,
    CE_LOOKUP_INCONSISTENT,
    QUERY_DATE_IN_FUTURE,
    QUERY_NOT_TO_REGISTER_KEEPER,
)
from gateway.core.rules.common import Header, clark_path, text
from gateway.errors import Finding

_CL, _AQ = NS_CE_LOOKUP, NS_AEO_QUERY

# Per document type: its namespace, body element, country element and date element.
_SHAPES = {
    Doc.CE_LOOKUP_REQUEST: (_CL, "Query", "ExportCountryCode", "DeclarationDate"),
    Doc.CE_LOOKUP_RESPONSE: (_CL, "Result", "ExportCountryCode", "DeclarationDate"),
    Doc.AEO_STATUS_QUERY: (_AQ, "Query", "IssuingCountryCode", "QueryDate"),
    Doc.AEO_STATUS_RESPONSE: (_AQ, "Result", "IssuingCountryCode", "QueryDate"),
}
_QUERIES = (Doc.CE_LOOKUP_REQUEST, Doc.AEO_STATUS_QUERY)


def register_query_rules(
    root: etree._Element, doc: Doc, h: Header, now: datetime, plan: MraPlan
) -> Iterator[Finding]:
    """A query goes to the country whose register it asks about, for a day not after today; a
    response comes from that country; AEO queries and responses only between MRA partners; a
    response's results agree with one another."""
    ns, body_name, country_name, day_name = _SHAPES[doc]
    body = required(child(root, clark_path(ns, body_name)), body_name)
    country_el = child(body, clark_path(ns, country_name))
    country = text(country_el)
    day_el = child(body, clark_path(ns, day_name))
    day = date.fromisoformat(text(day_el))
    if doc in _QUERIES:
        if country != h.receiver.upper():
            yield QUERY_NOT_TO_REGISTER_KEEPER.finding(
                country_el,
                f"{country_name} {country} differs from the receiver {h.receiver.upper()}; a "
                "register is asked of the Member State that keeps it.",
                f"Address the query to {country}.",
            )
        if day > now.date():
            yield QUERY_DATE_IN_FUTURE.finding(
                day_el,
                f"{day_name} {day.isoformat()} is after today ({now.date().isoformat()}).",
                "Ask about the date of the declaration (or today).",
            )
    elif country != h.sender.upper():
        yield ANSWER_NOT_FROM_REGISTER_KEEPER.finding(
            country_el,
            f"{country_name} {country} differs from the sender {h.sender.upper()}; only the "
            "Member State that keeps a register reports on it.",
            "Answer only about your own country's register.",
        )
    if doc in (Doc.AEO_STATUS_QUERY, Doc.AEO_STATUS_RESPONSE):
        for end in (h.sender.upper(), h.receiver.upper()):
            if not plan.takes_part(end, day):
                yield AEO_QUERY_NOT_PARTNER.finding(
                    h.el,
                    f"{end} does not take part in the ASEAN AEO MRA on {day.isoformat()}; AEO "
                    "status is asked and answered only between MRA partners.",
                    "Ask only partners operational under the MRA (setting documents.mra_file; "
                    "shipped: gateway/data/aeo.toml).",
                )
    if doc is Doc.CE_LOOKUP_RESPONSE:
        yield from _ce_lookup_result_rules(body)
    elif doc is Doc.AEO_STATUS_RESPONSE:
        yield from _aeo_result_rules(body)


def _ce_lookup_result_rules(result: etree._Element) -> Iterator[Finding]:
    matches = [
        (
            text(child(m, clark_path(_CL, "ElementCode"))),
            text(child(m, clark_path(_CL, "MatchCode"))),
            m,
        )
        for m in result.iterchildren(clark_path(_CL, "Match"))
    ]
    exporter = [code for element, code, _ in matches if element == EXPORTER]
    if not exporter:
        yield CE_LOOKUP_EXPORTER_MISSING.finding(
            result,
            "the response gives no Match with ElementCode EXPORTER.",
            "Say first whether the exporter is in the register (MATCH or NO_MATCH).",
        )
    elif exporter[0] != MATCH:
        for element, code, el in matches:
            if element != EXPORTER and code == MATCH:
                yield CE_LOOKUP_INCONSISTENT.finding(
                    el,
                    f"{element} is MATCH although the exporter is not registered.",
                    "An exporter not in the register matches nothing else.",
                )


def _aeo_result_rules(result: etree._Element) -> Iterator[Finding]:
    found = text(child(result, clark_path(_AQ, "FoundIndicator"))) in ("true", "1")
    valid_el = child(result, clark_path(_AQ, "ValidIndicator"))
    valid = text(valid_el) in ("true", "1")
    status = text(child(result, clark_path(_AQ, "StatusCode")))
    missing = [
        name
        for name in ("StatusCode", "ValidFrom", "ValidTo")
        if child(result, clark_path(_AQ, name)) is None
    ]
    if found and missing:
        yield AEO_RESPONSE_INCONSISTENT.finding(
            result,
            f"the AEO id is found, but the result lacks {', '.join(missing)}.",
            "Give the status and validity the register holds.",
        )
    if valid and (not found or status != "VALID"):
        yield AEO_RESPONSE_INCONSISTENT.finding(
            valid_el,
            "ValidIndicator is true although the id is "
            + ("not found." if not found else f"{status}."),
            "Only a VALID id within its validity on the day asked is valid.",
        )
