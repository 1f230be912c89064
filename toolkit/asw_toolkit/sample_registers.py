"""The committed invalid and warning samples of the registers and the documents checked
against them (issue 18: certified-exporter register update, Origin Declaration, AEO status
notification, the ACDD's AEO ids): each a small edit of a hand-written valid sample, with the
finding codes the validator must give. ``asw_toolkit.sample_set`` writes them with the others.

The register rules that need a history (``REGISTER_RULES``) have no sample here: the validator
alone cannot give them; ``tests/core/test_registers.py`` and the integration tests do.
"""

from __future__ import annotations

from asw_toolkit import xml_edits

Edit = xml_edits.Edit[None]
_set = xml_edits.set_text
_drop = xml_edits.drop
_after = xml_edits.insert_after
_all = xml_edits.all_of

GRANT = "ce-register/valid/sg-1-grant-orchid-foods.xml"
DECLARATION = "origin-declaration/valid/sg-my-orchid-foods.xml"
SNAPSHOT = "aeo-status/valid/sg-my-snapshot.xml"
ACDD = "acdd/valid/sg-my-electronics.xml"
_SIGNATORY = "<cr:Signatory><cr:Name>Signatory {}</cr:Name></cr:Signatory>"
_AEO_PARTY = (
    "<ac:AEOMutualRecognitionParty><ac:ID>{}</ac:ID><ac:CountryCode>{}</ac:CountryCode>"
    "<ac:RoleCode>EX</ac:RoleCode></ac:AEOMutualRecognitionParty>"
)

REGISTER_INVALID: list[tuple[str, str, Edit, list[str]]] = [
    # --- certified-exporter register update ------------------------------------------------
    (
        GRANT,
        "ce-register/invalid/ce-issuer-not-sender.xml",
        _set("//cr:IssuingCountryCode", "MY"),
        ["ce-issuer-not-sender"],
    ),
    (
        GRANT,
        "ce-register/invalid/ce-record-incomplete.xml",
        _all(_drop("//cr:Signatory"), _drop("//cr:Signatory")),
        ["ce-record-incomplete"],
    ),
    (
        GRANT,
        "ce-register/invalid/ce-validity-reversed.xml",
        _set("//cr:ExpiryDate", "2025-02-28"),
        ["ce-validity-reversed"],
    ),
    (
        GRANT,
        "ce-register/invalid/ce-signatory-duplicate.xml",
        _set("//cr:Signatory[2]/cr:Name", "TAN  Mei Ling"),
        ["ce-signatory-duplicate"],
    ),
    (
        GRANT,
        "ce-register/invalid/xsd-eleven-signatories.xml",
        _after("//cr:Signatory[2]", "".join(_SIGNATORY.format(n) for n in range(3, 12))),
        ["xsd-unexpected-element"],
    ),
    # --- Origin Declaration ---------------------------------------------------------------
    (
        DECLARATION,
        "origin-declaration/invalid/od-export-country-not-sender.xml",
        _set("//od:ExportCountryCode", "TH"),
        ["od-export-country-not-sender"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/od-import-country-not-receiver.xml",
        _set("//od:ImportCountryCode", "VN"),
        ["od-import-country-not-receiver"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/od-date-in-future.xml",
        _all(
            _set("//od:Declaration/od:IssueDate", "2030-01-10"),
            _set("//od:CarrierDocument/od:IssueDate", "2030-01-10"),
        ),
        ["od-date-in-future"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/od-carrier-document-mismatch.xml",
        _set("//od:CarrierDocument/od:IssueDate", "2026-11-18"),
        ["od-carrier-document-mismatch"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/od-origin-criterion-format.xml",
        _set("//od:GoodsItem[2]/od:OriginCriterionCode", "CTHS"),
        ["od-origin-criterion-format"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/od-fob-value-missing.xml",
        _drop("//od:FOBValueAmount"),
        ["od-fob-value-missing"],
    ),
    (
        DECLARATION,
        "origin-declaration/invalid/xsd-hs-code-nine-digits.xml",
        _set("//od:GoodsItem[1]//od:Classification/od:ID", "180690101"),
        ["xsd-invalid-value"],
    ),
    # --- AEO status notification ------------------------------------------------------------
    (
        SNAPSHOT,
        "aeo-status/invalid/aeo-issuer-not-sender.xml",
        _set("//ae:IssuingCountryCode", "MY"),
        ["aeo-issuer-not-sender", "aeo-notification-id-format"],
    ),
    (
        SNAPSHOT,
        "aeo-status/invalid/aeo-receiver-not-mra-partner.xml",
        _all(
            _set("//cm:ReceiverParty/cm:CountryCode", "VN"),
            _set("//cm:ReceiverParty/cm:PartyID", "VN-GDVC"),
        ),
        ["aeo-receiver-not-mra-partner"],
    ),
    (
        SNAPSHOT,
        "aeo-status/invalid/aeo-notification-id-format.xml",
        _set("//ae:Operator[1]/ae:ID", "SG2024STP0001"),
        ["aeo-notification-id-format"],
    ),
    (
        SNAPSHOT,
        "aeo-status/invalid/aeo-validity-reversed.xml",
        _set("//ae:Operator[1]/ae:ValidTo", "2024-04-30"),
        ["aeo-validity-reversed"],
    ),
    (
        SNAPSHOT,
        "aeo-status/invalid/xsd-role-code-unknown.xml",
        _set("//ae:Operator[1]/ae:RoleCode[1]", "ZZ"),
        ["xsd-not-in-code-list"],
    ),
    # --- the ACDD's AEO ids (warnings only) ------------------------------------------------
    (
        ACDD,
        "acdd/warning/aeo-issuer-not-in-mra.xml",
        _after("//ac:Declarant", _AEO_PARTY.format("VN-AEO-0001", "VN")),
        ["aeo-issuer-not-in-mra"],
    ),
    (
        ACDD,
        "acdd/warning/aeo-id-format.xml",
        _after("//ac:Declarant", _AEO_PARTY.format("SG2024STP0001", "SG")),
        ["aeo-id-format"],
    ),
]
