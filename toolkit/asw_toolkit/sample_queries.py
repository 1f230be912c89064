"""The committed invalid samples of the register lookups (issue 18 §4-5: certified-exporter
lookup request and response, AEO status query and response): each a small edit of a
hand-written valid sample, with the finding codes the validator must give.
``asw_toolkit.sample_set`` writes them with the others.

Who may send a response (``reply-not-allowed``) needs the journalled query: the integration
tests check it, not a sample.
"""

from __future__ import annotations

from asw_toolkit import xml_edits

Edit = xml_edits.Edit[None]
_set = xml_edits.set_text
_drop = xml_edits.drop
_all = xml_edits.all_of

CE_REQUEST = "ce-lookup/valid/my-sg-orchid-foods-request.xml"
CE_RESPONSE = "ce-lookup/valid/sg-my-orchid-foods-response.xml"
AEO_QUERY = "aeo-query/valid/my-sg-merlion-query.xml"
AEO_RESPONSE = "aeo-query/valid/sg-my-merlion-suspended-response.xml"

QUERY_INVALID: list[tuple[str, str, Edit, list[str]]] = [
    # --- certified-exporter lookup --------------------------------------------------------------
    (
        CE_REQUEST,
        "ce-lookup/invalid/register-query-wrong-country.xml",
        _set("//cl:ExportCountryCode", "TH"),
        ["register-query-wrong-country"],
    ),
    (
        CE_REQUEST,
        "ce-lookup/invalid/register-query-date-in-future.xml",
        _set("//cl:DeclarationDate", "2099-01-01"),
        ["register-query-date-in-future"],
    ),
    (
        CE_REQUEST,
        "ce-lookup/invalid/xsd-classification-not-hs.xml",
        _set("//cl:Classification[1]/cl:ID", "1806"),
        ["xsd-invalid-value"],
    ),
    (
        CE_RESPONSE,
        "ce-lookup/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        CE_RESPONSE,
        "ce-lookup/invalid/register-answer-wrong-country.xml",
        _set("//cl:ExportCountryCode", "TH"),
        ["register-answer-wrong-country"],
    ),
    (
        CE_RESPONSE,
        "ce-lookup/invalid/ce-lookup-exporter-result-missing.xml",
        _set("//cl:Match[1]/cl:ElementCode", "AUTHORISATION"),
        ["ce-lookup-exporter-result-missing"],
    ),
    (
        CE_RESPONSE,
        "ce-lookup/invalid/ce-lookup-result-inconsistent.xml",
        _set("//cl:Match[1]/cl:MatchCode", "NO_MATCH"),
        ["ce-lookup-result-inconsistent"],
    ),
    (
        CE_RESPONSE,
        "ce-lookup/invalid/xsd-match-code-not-in-list.xml",
        _set("//cl:Match[1]/cl:MatchCode", "MAYBE"),
        ["xsd-not-in-code-list"],
    ),
    # --- AEO status query -----------------------------------------------------------------------
    (
        AEO_QUERY,
        "aeo-query/invalid/register-query-wrong-country.xml",
        _set("//aq:IssuingCountryCode", "MY"),
        ["register-query-wrong-country"],
    ),
    (
        AEO_QUERY,
        "aeo-query/invalid/aeo-query-not-mra-partner.xml",
        _all(_set("//cm:SenderParty/cm:CountryCode", "VN"), _drop("//cm:SenderParty/cm:PartyID")),
        ["aeo-query-not-mra-partner"],
    ),
    (
        AEO_QUERY,
        "aeo-query/invalid/register-query-date-in-future.xml",
        _set("//aq:QueryDate", "2099-01-01"),
        ["register-query-date-in-future"],
    ),
    (
        AEO_RESPONSE,
        "aeo-query/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        AEO_RESPONSE,
        "aeo-query/invalid/register-answer-wrong-country.xml",
        _set("//aq:IssuingCountryCode", "MY"),
        ["register-answer-wrong-country"],
    ),
    (
        AEO_RESPONSE,
        "aeo-query/invalid/aeo-response-found-without-status.xml",
        _drop("//aq:StatusCode"),
        ["aeo-response-inconsistent"],
    ),
    (
        AEO_RESPONSE,
        "aeo-query/invalid/aeo-response-valid-while-suspended.xml",
        _set("//aq:ValidIndicator", "true"),
        ["aeo-response-inconsistent"],
    ),
]
