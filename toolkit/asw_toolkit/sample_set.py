"""The committed samples: write the derived documents and ``samples/manifest.json``.

    .venv/bin/asw-toolkit samples regenerate [--dir samples]

Hand-written samples (``*/valid/*.xml`` except those listed in ``FORM_D_VARIANTS`` and the
large one) are inputs. This writes: the Form D variants, the ~1 MB Form D, one invalid
sample per business rule and per important XSD constraint (each a small edit of a valid
sample), and the manifest. The expected finding codes are declared here by hand next to each
edit; the manifest test checks the validator against them. The builders, the edit helpers and
the manifest writer are the generator's (``asw_toolkit.samplegen``, ``asw_toolkit.xml_edits``).
"""

from __future__ import annotations

import random
from pathlib import Path

from lxml import etree

from asw_toolkit import xml_edits
from asw_toolkit.sample_queries import QUERY_INVALID
from asw_toolkit.sample_registers import REGISTER_INVALID
from asw_toolkit.sample_variants import FORM_D_VARIANTS, LARGE_BASE, PRODUCTS
from asw_toolkit.samplegen import FormD, Item, build, manifest_entry, serialise, write_manifest

Edit = xml_edits.Edit[None]
_set = xml_edits.set_text
_attr = xml_edits.set_attribute
_drop = xml_edits.drop
_after = xml_edits.insert_after
_all = xml_edits.all_of

FD_ITEM1 = "//fd:GovernmentAgencyGoodsItem[1]"
FD_FLAG = "//fdx:CertificateFlags/fdx:{}Indicator"
BASIC = "formd/valid/sg-th-basic.xml"
FOB_BASE = "formd/valid/my-kh-rvc-fob.xml"
NEW_ID: Edit = _set("//cm:MessageID", "9b1f3c5d-7e2a-4b6c-8d0e-f1a2b3c4d5e6")

# (source, target, edit, expected codes): one per rule and per important XSD constraint.
# Targets under */warning/ break only warning rules: they are valid, with findings.
INVALID: list[tuple[str, str, Edit, list[str]]] = [
    # --- business rules, Form D --------------------------------------------------------------
    (
        BASIC,
        "formd/invalid/origin-criterion-format.xml",
        _set(f"{FD_ITEM1}//fdx:OriginCriterionCode", "CTX"),
        ["origin-criterion-format"],
    ),
    (
        BASIC,
        "formd/invalid/origin-criterion-over-100.xml",
        _set(f"{FD_ITEM1}//fdx:OriginCriterionCode", "140%"),
        ["origin-criterion-format"],
    ),
    (
        BASIC,
        "formd/invalid/partial-cumulation-out-of-range.xml",
        _all(
            _set(f"{FD_ITEM1}//fdx:OriginCriterionCode", "PC 45%"),
            _set(FD_FLAG.format("PartialCumulation"), "true"),
        ),
        ["partial-cumulation-out-of-range"],
    ),
    (
        BASIC,
        "formd/warning/partial-cumulation-flag-mismatch.xml",
        _set(f"{FD_ITEM1}//fdx:OriginCriterionCode", "PC 25%"),
        ["partial-cumulation-flag-mismatch"],
    ),
    (
        FOB_BASE,
        "formd/invalid/fob-value-missing.xml",
        _drop(f"{FD_ITEM1}/fdx:FOBValueAmount"),
        ["fob-value-missing"],
    ),
    (
        BASIC,
        "formd/invalid/hs-code-length.xml",
        _set(f"{FD_ITEM1}//fd:Classification/fd:ID", "8482"),
        ["hs-code-length"],
    ),
    (
        BASIC,
        "formd/invalid/issue-date-after-departure.xml",
        _set("//fdx:DepartureDate", "2026-11-15"),
        ["issue-date-after-departure"],
    ),
    (
        BASIC,
        "formd/invalid/retroactive-issue-too-late.xml",
        _all(
            _set("//fdx:DepartureDate", "2025-10-01"),
            _set(FD_FLAG.format("IssuedRetroactively"), "true"),
        ),
        ["retroactive-issue-too-late"],
    ),
    (
        BASIC,
        "formd/invalid/retroactive-departure-date-missing.xml",
        _all(_drop("//fdx:DepartureDate"), _set(FD_FLAG.format("IssuedRetroactively"), "true")),
        ["retroactive-departure-date-missing"],
    ),
    (
        BASIC,
        "formd/warning/retroactive-flag-unneeded.xml",
        _set(FD_FLAG.format("IssuedRetroactively"), "true"),
        ["retroactive-flag-unneeded"],
    ),
    (
        BASIC,
        "formd/invalid/back-to-back-original-missing.xml",
        _set(FD_FLAG.format("BackToBack"), "true"),
        ["back-to-back-original-missing"],
    ),
    (
        BASIC,
        "formd/invalid/back-to-back-original-incomplete.xml",
        _all(
            _set(FD_FLAG.format("BackToBack"), "true"),
            _after(
                "//fdx:CertificateFlags",
                "<fdx:BackToBackOriginalReference><fdx:ID>"
                "VN-HCM-26-0088123</fdx:ID></fdx:BackToBackOriginalReference>",
            ),
        ),
        ["back-to-back-original-incomplete"],
    ),
    (
        BASIC,
        "formd/warning/back-to-back-not-flagged.xml",
        _after(
            "//fdx:CertificateFlags",
            "<fdx:BackToBackOriginalReference><fdx:ID>VN-HCM-26-"
            "0088123</fdx:ID><fdx:IssueDate>2026-10-30</fdx:IssueDate>"
            "</fdx:BackToBackOriginalReference>",
        ),
        ["back-to-back-not-flagged"],
    ),
    (
        BASIC,
        "formd/invalid/third-country-invoicing-party-missing.xml",
        _set(FD_FLAG.format("ThirdCountryInvoicing"), "true"),
        ["third-country-invoicing-party-missing"],
    ),
    (
        BASIC,
        "formd/warning/third-country-invoicing-not-flagged.xml",
        _after(
            "//fdx:CertificateFlags",
            "<fdx:ThirdCountryInvoicingParty><fdx:Name>Harbour "
            "Trading Ltd</fdx:Name><fdx:CountryCode>HK</fdx:CountryCode>"
            "</fdx:ThirdCountryInvoicingParty>",
        ),
        ["third-country-invoicing-not-flagged"],
    ),
    (
        BASIC,
        "formd/invalid/exhibition-missing.xml",
        _set(FD_FLAG.format("Exhibition"), "true"),
        ["exhibition-missing"],
    ),
    (
        BASIC,
        "formd/invalid/origin-country-not-member-state.xml",
        _set(f"{FD_ITEM1}/fd:Origin/fd:CountryCode", "CN"),
        ["origin-country-not-member-state"],
    ),
    (
        BASIC,
        "formd/invalid/countries-identical.xml",
        _set("//fd:Destination/fd:CountryCode", "SG"),
        ["countries-identical"],
    ),
    (
        BASIC,
        "formd/invalid/country-not-member-state.xml",
        _set("//fd:Destination/fd:CountryCode", "CN"),
        ["country-not-member-state", "import-country-not-receiver"],
    ),
    (
        BASIC,
        "formd/invalid/export-country-not-sender.xml",
        _set("//fd:ExportCountry/fd:ID", "MY"),
        ["export-country-not-sender"],
    ),
    (
        BASIC,
        "formd/invalid/import-country-not-receiver.xml",
        _set("//fd:Destination/fd:CountryCode", "VN"),
        ["import-country-not-receiver"],
    ),
    (
        BASIC,
        "formd/invalid/date-in-future.xml",
        _set("//fdx:DeclarationDate", "2999-01-01"),
        ["date-in-future"],
    ),
    (
        BASIC,
        "formd/invalid/datetime-in-future.xml",
        _set("//cm:CreationDateTime", "2999-01-01T00:00:00Z"),
        ["datetime-in-future"],
    ),
    (
        BASIC,
        "formd/invalid/reference-missing.xml",
        _all(NEW_ID, _set("//cm:FunctionCode", "5")),
        ["reference-missing"],
    ),
    (
        BASIC,
        "formd/invalid/reference-to-self.xml",
        _after(
            "//cm:CreationDateTime",
            "<cm:ReferencedMessageID>6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f</cm:ReferencedMessageID>",
        ),
        ["reference-to-self"],
    ),
    (
        BASIC,
        "formd/invalid/sender-is-receiver.xml",
        _set("//cm:ReceiverParty/cm:CountryCode", "SG"),
        ["sender-is-receiver", "import-country-not-receiver"],
    ),
    # --- XSD constraints, Form D -------------------------------------------------------------
    (
        BASIC,
        "formd/invalid/xsd-missing-reference-number.xml",
        _drop("/fd:EFormD/fd:Declaration/fd:ID"),
        ["xsd-unexpected-element"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-missing-flags.xml",
        _drop("//fdx:CertificateFlags/fdx:PartialCumulationIndicator"),
        ["xsd-missing-element"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-unknown-element.xml",
        _after("//fd:Exporter", "<fd:Importer><cm:Name>x</cm:Name></fd:Importer>"),
        ["xsd-unexpected-element"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-hs-code-letters.xml",
        _set(f"{FD_ITEM1}//fd:Classification/fd:ID", "8482.10.AB"),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-package-type-not-in-rec21.xml",
        _set(f"{FD_ITEM1}//fd:Packaging/fd:TypeCode", "PLT"),
        ["xsd-not-in-code-list"],
    ),
    (
        BASIC,
        "formd/invalid/unit-code-unknown.xml",
        _attr(f"{FD_ITEM1}//fd:GrossMassMeasure", "unitCode", "PCE"),
        ["unit-code-unknown"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-missing-unit.xml",
        _attr(f"{FD_ITEM1}//fd:GrossMassMeasure", "unitCode", None),
        ["xsd-missing-attribute"],
    ),
    (
        FOB_BASE,
        "formd/invalid/xsd-currency-not-in-iso4217.xml",
        _attr(f"{FD_ITEM1}/fdx:FOBValueAmount", "currencyID", "US$"),
        ["xsd-not-in-code-list"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-transport-mode-not-in-rec19.xml",
        _set("//fd:BorderTransportMeans/fd:ModeCode", "10"),
        ["xsd-not-in-code-list"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-unlocode-format.xml",
        _set("//fd:UnloadingLocation/fd:ID", "TH LCH"),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-bad-date.xml",
        _set("/fd:EFormD/fd:Declaration/fd:IssueDateTime", "19/11/2026"),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-duplicate-item-number.xml",
        _set("//fd:GovernmentAgencyGoodsItem[2]/fd:SequenceNumeric", "1"),
        ["xsd-duplicate-key"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-name-too-long.xml",
        _set(
            "//fd:Exporter/cm:Name",
            "Lion City Precision Components and Industrial Bearings Manufacturing Pte Ltd",
        ),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-header-sender-not-member.xml",
        _set("//cm:SenderParty/cm:CountryCode", "CN"),
        ["xsd-not-in-code-list"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-creation-time-without-zone.xml",
        _set("//cm:CreationDateTime", "2026-11-20T09:15:00"),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-bad-flag.xml",
        _set(FD_FLAG.format("Exhibition"), "no"),
        ["xsd-invalid-value"],
    ),
    (
        BASIC,
        "formd/invalid/xsd-stray-text.xml",
        _set(f"{FD_ITEM1}/fd:Packaging", "12 cartons"),
        ["xsd-unexpected-text"],
    ),
    # --- ACDD -----------------------------------------------------------------------------------
    (
        "acdd/valid/sg-my-electronics.xml",
        "acdd/invalid/countries-identical.xml",
        _set("//ac:Destination/ac:CountryCode", "SG"),
        ["countries-identical"],
    ),
    (
        "acdd/valid/sg-my-electronics.xml",
        "acdd/invalid/xsd-hs-code-too-short.xml",
        _set("//ac:GovernmentAgencyGoodsItem[1]//ac:Classification/ac:ID", "8542"),
        ["xsd-invalid-value"],
    ),
    (
        "acdd/valid/sg-my-electronics.xml",
        "acdd/invalid/xsd-missing-declarant.xml",
        _drop("//ac:Declarant"),
        ["xsd-unexpected-element"],
    ),
    # --- Customs Response ---------------------------------------------------------------------
    (
        "response/valid/id-th-formd-rejected.xml",
        "response/invalid/rejection-reason-missing.xml",
        _drop("//rs:Error"),
        ["rejection-reason-missing"],
    ),
    (
        "response/valid/kh-my-formd-partially-utilised.xml",
        "response/invalid/item-rejection-reason-missing.xml",
        _drop("//rs:GovernmentAgencyGoodsItem[2]/rs:Error"),
        ["rejection-reason-missing"],
    ),
    (
        "response/valid/kh-my-formd-partially-utilised.xml",
        "response/invalid/partial-utilisation-items-missing.xml",
        _all(_drop("//rs:GovernmentAgencyGoodsItem[2]"), _drop("//rs:GovernmentAgencyGoodsItem")),
        ["partial-utilisation-items-missing"],
    ),
    (
        "response/valid/th-sg-formd-utilised.xml",
        "response/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        "response/valid/th-sg-formd-utilised.xml",
        "response/invalid/xsd-status-not-in-list.xml",
        _set("//rs:Status/rs:NameCode", "ACCEPTED"),
        ["xsd-not-in-code-list"],
    ),
    # --- Delivery receipt ---------------------------------------------------------------------
    (
        "receipt/valid/th-sg-formd-sha256.xml",
        "receipt/invalid/receipt-digest-length.xml",
        _set("//rc:Digest/rc:Value", "q83vEjRWeJq83vEjRWeJ"),
        ["receipt-digest-length"],
    ),
    (
        "receipt/valid/th-sg-formd-sha256.xml",
        "receipt/invalid/receipt-reference-mismatch.xml",
        _set("//cm:ReferencedMessageID", "0b6e4a52-93c1-4f0e-a7d2-5c1e2f3a4b60"),
        ["receipt-reference-mismatch"],
    ),
    (
        "receipt/valid/th-sg-formd-sha256.xml",
        "receipt/invalid/datetime-in-future.xml",
        _set("//rc:ReceivedDateTime", "2999-11-20T08:15:01Z"),
        ["datetime-in-future"],
    ),
    (
        "receipt/valid/th-sg-formd-sha256.xml",
        "receipt/invalid/xsd-digest-not-base64.xml",
        _set("//rc:Digest/rc:Value", "not base64!"),
        ["xsd-invalid-value"],
    ),
]

# --- official code lists and the HS nomenclature (issue 17, classes 2 and 3) -----------------
FD_HS1 = f"{FD_ITEM1}//fd:Classification/fd:ID"
INVALID += [
    (BASIC, "formd/invalid/hs-code-unknown-chapter.xml", _set(FD_HS1, "77010000"),
     ["hs-code-unknown"]),
    (BASIC, "formd/invalid/hs-code-unknown-heading.xml", _set(FD_HS1, "8499.10"),
     ["hs-code-unknown"]),
    (BASIC, "formd/invalid/hs-code-unknown-subheading.xml", _set(FD_HS1, "8471.99.00"),
     ["hs-code-unknown"]),
    (BASIC, "formd/invalid/xsd-hs-code-spaced.xml", _set(FD_HS1, "8482 10"),
     ["xsd-invalid-value"]),
    (BASIC, "formd/invalid/xsd-unit-not-a-rec20-code.xml",
     _attr(f"{FD_ITEM1}//fd:GrossMassMeasure", "unitCode", "kg"), ["xsd-invalid-value"]),
    (BASIC, "formd/warning/unit-code-deprecated.xml",
     _attr(f"{FD_ITEM1}//fd:TariffQuantity", "unitCode", "NPR"), ["unit-code-retired"]),
    (BASIC, "formd/warning/unit-code-deleted.xml",
     _attr(f"{FD_ITEM1}//fd:TariffQuantity", "unitCode", "CT"), ["unit-code-retired"]),
    (BASIC, "formd/warning/unlocode-unknown.xml", _set("//fd:LoadingLocation/fd:ID", "SGXYZ"),
     ["unlocode-unknown"]),
    (BASIC, "formd/warning/unlocode-country-mismatch.xml",
     _set("//fd:LoadingLocation/fd:ID", "MYPKG"), ["unlocode-country-mismatch"]),
    (BASIC, "formd/warning/unlocode-discharge-country-mismatch.xml",
     _set("//fd:UnloadingLocation/fd:ID", "VNSGN"), ["unlocode-country-mismatch"]),
    ("acdd/valid/sg-my-electronics.xml", "acdd/invalid/hs-code-unknown.xml",
     _set("//ac:GovernmentAgencyGoodsItem[1]//ac:Classification/ac:ID", "77011000"),
     ["hs-code-unknown"]),
    ("acdd/valid/sg-my-electronics.xml", "acdd/warning/unlocode-country-mismatch.xml",
     _set("//ac:UnloadingLocation/ac:ID", "THLCH"), ["unlocode-country-mismatch"]),
]  # fmt: skip


# --- issue 17, classes 1, 4-9 and 11 (helper doc-rules) --------------------------------------
B2B = "formd/valid/th-id-back-to-back.xml"
EXHIBITION = "formd/valid/id-my-exhibition.xml"
PARTIAL = "formd/valid/vn-la-partial-cumulation.xml"
FD_ITEM2 = "//fd:GovernmentAgencyGoodsItem[2]"
CRITERION1 = f"{FD_ITEM1}//fdx:OriginCriterionCode"
CRITERION2 = f"{FD_ITEM2}//fdx:OriginCriterionCode"
INVOICE_DATE = "//fd:Invoice/fd:IssueDateTime"
ORIGINAL = "//fdx:BackToBackOriginalReference"
_FOB = '<fdx:FOBValueAmount currencyID="USD">15200.00</fdx:FOBValueAmount>'
_TRUE_COPY = "<fdx:CertifiedTrueCopyIndicator>{}</fdx:CertifiedTrueCopyIndicator>"

INVALID += [
    (BASIC, "formd/invalid/origin-criterion-cannot-confer-origin.xml", _set(CRITERION1, "35%"),
     ["origin-criterion-cannot-confer-origin"]),
    (BASIC, "formd/invalid/origin-criterion-zero-percent.xml", _set(CRITERION1, "0%"),
     ["origin-criterion-cannot-confer-origin"]),
    (BASIC, "formd/invalid/origin-country-not-exporting-state.xml",
     _set(f"{FD_ITEM1}/fd:Origin/fd:CountryCode", "MY"), ["origin-country-not-exporting-state"]),
    (B2B, "formd/invalid/back-to-back-original-same-country.xml",
     _all(_set(f"{ORIGINAL}/fdx:IssuingCountryCode", "TH"),
          _set(f"{FD_ITEM1}/fd:Origin/fd:CountryCode", "TH")),
     ["back-to-back-original-same-country"]),
    (B2B, "formd/invalid/back-to-back-original-not-earlier.xml",
     _set(f"{ORIGINAL}/fdx:IssueDate", "2026-08-03"), ["back-to-back-original-not-earlier"]),
    (B2B, "formd/invalid/back-to-back-original-expired.xml",
     _set(f"{ORIGINAL}/fdx:IssueDate", "2025-07-30"), ["back-to-back-original-expired"]),
    (B2B, "formd/invalid/back-to-back-origin-mismatch.xml",
     _set(f"{FD_ITEM1}/fd:Origin/fd:CountryCode", "MY"), ["back-to-back-origin-mismatch"]),
    (B2B, "formd/invalid/back-to-back-original-country-missing.xml",
     _drop(f"{ORIGINAL}/fdx:IssuingCountryCode"), ["back-to-back-original-incomplete"]),
    (EXHIBITION, "formd/invalid/exhibition-not-in-member-state.xml",
     _set("//fdx:Exhibition/fdx:Address/cm:CountryCode", "CN"),
     ["exhibition-not-in-member-state"]),
    (EXHIBITION, "formd/invalid/exhibition-in-exporting-state.xml",
     _set("//fdx:Exhibition/fdx:Address/cm:CountryCode", "ID"),
     ["exhibition-not-in-member-state"]),
    (BASIC, "formd/invalid/invoice-date-implausible.xml", _set(INVOICE_DATE, "2569-11-17"),
     ["invoice-date-implausible"]),
    (BASIC, "formd/invalid/invoice-date-after-issue.xml", _set(INVOICE_DATE, "2026-11-20"),
     ["invoice-date-after-issue"]),
    (BASIC, "formd/invalid/declaration-after-certification.xml",
     _set("//fdx:DeclarationDate", "2026-11-20"), ["declaration-after-certification"]),
    (EXHIBITION, "formd/invalid/de-minimis-without-tariff-shift.xml",
     _set(FD_FLAG.format("DeMinimis"), "true"), ["de-minimis-without-tariff-shift"]),
    (BASIC, "formd/warning/fob-value-not-required.xml", _after(f"{FD_ITEM1}/fd:Origin", _FOB),
     ["fob-value-not-required"]),
    (BASIC, "formd/warning/exporter-address-outside-exporting-country.xml",
     _set("//fd:Exporter/cm:Address/cm:CountryCode", "MY"),
     ["exporter-address-outside-exporting-country"]),
    (BASIC, "formd/invalid/certified-true-copy-not-for-eform-d.xml",
     _after("//fdx:IssuingAuthority", _TRUE_COPY.format("true")),
     ["certified-true-copy-not-for-eform-d"]),
]  # fmt: skip

# Valid edge cases: each is a small edit of a valid sample and must pass without findings.
# --- issue 18: re-transmission request (OCP Rule 29(3)) ---------------------------------------
RETRANSMISSION = "retransmission/valid/th-sg-formd-lost.xml"
INVALID += [
    (
        RETRANSMISSION,
        "retransmission/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        RETRANSMISSION,
        "retransmission/invalid/datetime-in-future.xml",
        _set("//rt:IssueDateTime", "2099-01-01T00:00:00Z"),
        ["datetime-in-future"],
    ),
    (
        RETRANSMISSION,
        "retransmission/invalid/xsd-type-not-form-d.xml",
        _set("//rt:Declaration/rt:TypeCode", "ACDD"),
        ["xsd-not-in-code-list"],
    ),
]

# --- issue 18: rejection, clarification, retroactive check, verification visit ----------------
REJECTION = "rejection/valid/th-sg-formd-items-rejected.xml"
OD_REJECTION = "rejection/valid/my-sg-origin-declaration-rejected.xml"
CLARIFICATION = "clarification/valid/sg-th-hs-code-explained.xml"
RETRO_REQUEST = "verification/valid/th-sg-retroactive-check-request.xml"
RETRO_REPLY = "verification/valid/sg-th-retroactive-check-reply.xml"
VISIT_CONSENT = "verification/valid/sg-th-visit-consent.xml"
VISIT_RESULT = "verification/valid/th-sg-visit-result.xml"
INVALID += [
    (
        REJECTION,
        "rejection/invalid/rejection-without-reasons.xml",
        _drop("//rj:GovernmentAgencyGoodsItem"),
        ["rejection-without-reasons"],
    ),
    (
        REJECTION,
        "rejection/invalid/rejection-after-60-days.xml",
        _set("//rj:ReceiptDate", "2026-09-01"),
        ["rejection-after-60-days"],
    ),
    (
        REJECTION,
        "rejection/invalid/receipt-date-after-rejection.xml",
        _set("//rj:ReceiptDate", "2026-11-27"),
        ["receipt-date-after-rejection"],
    ),
    (
        REJECTION,
        "rejection/invalid/xsd-item-without-reason.xml",
        _all(
            _drop("//rj:GovernmentAgencyGoodsItem/rj:Reason"),
            _drop("//rj:GovernmentAgencyGoodsItem/rj:Reason"),
        ),
        ["xsd-missing-element"],
    ),
    (
        REJECTION,
        "rejection/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        OD_REJECTION,
        "rejection/invalid/od-rejection-after-60-days.xml",
        _set("//rj:ReceiptDate", "2026-09-01"),
        ["rejection-after-60-days"],
    ),
    (
        OD_REJECTION,
        "rejection/invalid/od-rejection-without-reasons.xml",
        _all(_drop("//rj:Rejection/rj:Reason"), _drop("//rj:GovernmentAgencyGoodsItem")),
        ["rejection-without-reasons"],
    ),
    (
        OD_REJECTION,
        "rejection/invalid/xsd-type-not-form-d-or-od.xml",
        _set("//rj:Declaration/rj:TypeCode", "ACDD"),
        ["xsd-not-in-code-list"],
    ),
    (
        CLARIFICATION,
        "clarification/invalid/clarification-empty.xml",
        _all(_drop("//rj:Explanation"), _drop("//rj:GovernmentAgencyGoodsItem")),
        ["clarification-empty"],
    ),
    (
        RETRO_REQUEST,
        "verification/invalid/verification-reason-missing.xml",
        _drop("//vf:Reason"),
        ["verification-reason-missing"],
    ),
    (
        RETRO_REQUEST,
        "verification/invalid/xsd-no-items.xml",
        _drop("//vf:GovernmentAgencyGoodsItem"),
        ["xsd-missing-element"],
    ),
    (
        RETRO_REPLY,
        "verification/invalid/result-explanation-missing.xml",
        _all(_set("//vf:ResultCode", "NOT_CONFIRMED"), _drop("//vf:Explanation")),
        ["result-explanation-missing"],
    ),
    (
        RETRO_REPLY,
        "verification/invalid/xsd-result-not-in-list.xml",
        _set("//vf:ResultCode", "MAYBE"),
        ["xsd-not-in-code-list"],
    ),
    (
        VISIT_CONSENT,
        "verification/invalid/visit-date-missing.xml",
        _drop("//vf:VisitDate"),
        ["visit-date-missing"],
    ),
    (
        VISIT_CONSENT,
        "verification/warning/refusal-explanation-missing.xml",
        _all(_set("//vf:ConsentIndicator", "false"), _drop("//vf:VisitDate")),
        ["refusal-explanation-missing"],
    ),
    (
        VISIT_RESULT,
        "verification/invalid/visit-date-in-future.xml",
        _set("//vf:VisitDate", "2099-01-01"),
        ["visit-date-in-future"],
    ),
]

# --- issue 18: the origin determination that ends a check or visit ---------------------------
CHECK_DETERMINATION = "determination/valid/th-sg-retroactive-check-determination.xml"
VISIT_DETERMINATION = "determination/valid/th-sg-visit-determination.xml"
INVALID += [
    (
        VISIT_DETERMINATION,
        "determination/invalid/determination-reason-missing.xml",
        _drop("//dt:Reason"),
        ["determination-reason-missing"],
    ),
    (
        CHECK_DETERMINATION,
        "determination/invalid/determination-item-repeated.xml",
        _after(
            "//dt:GovernmentAgencyGoodsItem",
            "<dt:GovernmentAgencyGoodsItem><dt:SequenceNumeric>1</dt:SequenceNumeric>"
            "<dt:DecisionCode>GRANTED</dt:DecisionCode></dt:GovernmentAgencyGoodsItem>",
        ),
        ["determination-item-repeated"],
    ),
    (
        CHECK_DETERMINATION,
        "determination/invalid/xsd-decision-not-in-list.xml",
        _set("//dt:DecisionCode", "PARTIAL"),
        ["xsd-not-in-code-list"],
    ),
    (
        CHECK_DETERMINATION,
        "determination/invalid/xsd-no-items.xml",
        _drop("//dt:GovernmentAgencyGoodsItem"),
        ["xsd-missing-element"],
    ),
    (
        CHECK_DETERMINATION,
        "determination/invalid/reference-missing.xml",
        _drop("//cm:ReferencedMessageID"),
        ["reference-missing"],
    ),
    (
        CHECK_DETERMINATION,
        "determination/invalid/datetime-in-future.xml",
        _set("//dt:IssueDateTime", "2099-01-01T00:00:00Z"),
        ["datetime-in-future"],
    ),
]

EDGES: list[tuple[str, str, Edit]] = [
    # Rule 10(1): issued exactly three days after shipment needs no tick.
    (BASIC, "formd/valid/edge-issued-3-days-after-shipment.xml",
     _set("//fdx:DepartureDate", "2026-11-16")),
    # Rule 10(2): ticked and issued four days, and exactly one year, after shipment.
    (BASIC, "formd/valid/edge-retroactive-4-days.xml",
     _all(_set("//fdx:DepartureDate", "2026-11-15"),
          _set(FD_FLAG.format("IssuedRetroactively"), "true"))),
    (BASIC, "formd/valid/edge-retroactive-one-year.xml",
     _all(_set("//fdx:DepartureDate", "2025-11-19"), _set(INVOICE_DATE, "2025-11-17"),
          _set(FD_FLAG.format("IssuedRetroactively"), "true"))),
    # Note 3: "RVC 40%", "RVC40%" and "40%" alike; combinations keep working.
    (BASIC, "formd/valid/edge-rvc-written-forms.xml",
     _all(_set(CRITERION1, "RVC 40%"), _set(CRITERION2, "RVC40%"))),
    (BASIC, "formd/valid/edge-tariff-shift-plus-rvc.xml",
     _all(_set(CRITERION1, "CTSH + 40%"), _set(CRITERION2, "CTH + RVC 35%"))),
    # Art. 30(2): partial cumulation from 20%.
    (PARTIAL, "formd/valid/edge-partial-cumulation-20.xml", _set(CRITERION1, "PC 20%")),
    # Accumulation does not change the origin country (the exporting Member State).
    (BASIC, "formd/valid/edge-accumulation-own-origin.xml",
     _set(FD_FLAG.format("Accumulation"), "true")),
    # Rules 11 and 14: an original issued exactly 12 months before; two originals.
    (B2B, "formd/valid/edge-back-to-back-original-12-months.xml",
     _set(f"{ORIGINAL}/fdx:IssueDate", "2025-07-31")),
    (B2B, "formd/valid/edge-back-to-back-two-originals.xml",
     _after(ORIGINAL, "<fdx:BackToBackOriginalReference><fdx:ID>MY-PKG-26-0041877</fdx:ID>"
            "<fdx:IssueDate>2026-07-20</fdx:IssueDate><fdx:IssuingCountryCode>MY"
            "</fdx:IssuingCountryCode></fdx:BackToBackOriginalReference>")),
    # Rule 22: the exhibition may be in a third Member State.
    (EXHIBITION, "formd/valid/edge-exhibition-in-third-member-state.xml",
     _set("//fdx:Exhibition/fdx:Address/cm:CountryCode", "TH")),
    # Invoice and declaration on the day of certification.
    (BASIC, "formd/valid/edge-same-day-dates.xml",
     _all(_set(INVOICE_DATE, "2026-11-19"), _set("//fdx:DeclarationDate", "2026-11-19"))),
    # Art. 33: De Minimis with a tariff-shift criterion.
    (BASIC, "formd/valid/edge-de-minimis-with-tariff-shift.xml",
     _set(FD_FLAG.format("DeMinimis"), "true")),
    # Rule 26(2): an explicit "not a certified true copy" is harmless.
    (BASIC, "formd/valid/edge-certified-true-copy-false.xml",
     _after("//fdx:IssuingAuthority", _TRUE_COPY.format("false"))),
]  # fmt: skip


def _large() -> FormD:
    rng = random.Random(20261122)  # noqa: S311  (sample data, not security)
    items = []
    for n in range(1, 1086):  # ~1.01 MB (1,085 items) without FOB values
        product = PRODUCTS[(n - 1) % len(PRODUCTS)]
        packages = rng.randint(1, 400)
        gross = f"{packages * product[3] * rng.uniform(0.9, 1.1):.1f}"
        items.append(
            Item(
                marks=f"VNL/SGN/{n:04d}",
                packages=packages,
                package_type=product[2],
                description=f"{product[0]}, lot {n:04d}",
                hs=product[1],
                gross_kg=gross,
                quantity=str(packages * product[4]),
                unit=product[5],
                origin="SG",
                criterion=product[6],
                # Rule 25: SG to VN shows no FOB value (only KH, ID, LA trade needs it)
                fob=None,
            )
        )
    return FormD(**{**LARGE_BASE, "items": tuple(items)})  # type: ignore[arg-type]


def _derive(samples: Path, source: str, target: str, edit: Edit) -> None:
    """Write ``target``: the sample ``source`` with ``edit`` applied."""
    parser = etree.XMLParser(remove_blank_text=False)
    root = etree.parse(str(samples / source), parser).getroot()
    edit(root, None)
    path = samples / target
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n")


def regenerate(samples: Path) -> tuple[int, int]:
    """Write every derived sample and the manifest under ``samples``.

    Returns the number of manifest entries and the size of the large Form D in bytes.
    """
    manifest: list[dict[str, object]] = []
    for name, form in FORM_D_VARIANTS.items():
        (samples / name).write_bytes(serialise(build(form)))
    large = samples / "formd/valid/sg-vn-large-1mb.xml"
    large.write_bytes(serialise(build(_large())))
    for source, target, edit in EDGES:
        _derive(samples, source, target, edit)
    for source, target, edit, codes in (*INVALID, *REGISTER_INVALID, *QUERY_INVALID):
        _derive(samples, source, target, edit)
        valid = "/warning/" in target  # warnings only: valid, but with findings
        manifest.append(manifest_entry(target, valid=valid, codes=sorted(codes)))
    derived = {entry["file"] for entry in manifest}
    for path in sorted(samples.glob("*/*/*.xml")):
        relative = path.relative_to(samples).as_posix()
        if relative not in derived:
            if "/valid/" not in relative:
                raise ValueError(f"{relative} is neither valid nor generated")
            manifest.append(manifest_entry(relative, valid=True, codes=[]))
    write_manifest(samples / "manifest.json", manifest)
    return len(manifest), large.stat().st_size
