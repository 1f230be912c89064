"""Business rules over XSD-valid Form D, ACDD, response and receipt trees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.parsing import parse
from gateway.core.rule_catalogue import CATALOGUE, HS_UNKNOWN
from gateway.core.rules import check_rules
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"
SAMPLE_FORMD = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CRITERION = b"<fdx:OriginCriterionCode>CTH</fdx:OriginCriterionCode>"


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


def _codes(
    validator: Validator, *edits: tuple[bytes, bytes], now: datetime = NOW, sample: str = ""
) -> list[str]:
    data = (SAMPLES / sample).read_bytes() if sample else SAMPLE_FORMD.read_bytes()
    for old, new in edits:
        assert old in data, old
        data = data.replace(old, new, 1)
    report = validator.check(parse(data), now=now)
    assert report.schema_valid, report.schema_findings
    return sorted(f.code for f in report.findings)


@pytest.mark.parametrize(
    "criterion",
    [
        "WO",
        "CC",
        "CTH",
        "CTSH",
        "SP",
        "40%",
        "62.5%",
        "RVC 40%",
        "RVC40%",
        "rvc 45 %",
        "CTSH + 35%",
        "CTSH + 40%",
        "CTH+40%",
        "CTSH + RVC 40%",
        "cth",
        "PC 20%",
        "PC 39.99%",
    ],
)
def test_origin_criteria_of_overleaf_note_3_are_accepted(
    validator: Validator, criterion: str
) -> None:
    """Every Box 8 form of Overleaf Note 3 (and tolerant spacing/case) passes."""
    flag = (b"PartialCumulationIndicator>false", b"PartialCumulationIndicator>true")
    edits = [
        (CRITERION, f"<fdx:OriginCriterionCode>{criterion}</fdx:OriginCriterionCode>".encode())
    ]
    if criterion.startswith("PC"):
        edits.append(flag)
    assert _codes(validator, *edits) == []


@pytest.mark.parametrize(
    ("criterion", "code"),
    [
        ("CTX", "origin-criterion-format"),
        ("PE", "origin-criterion-format"),
        ("PSR", "origin-criterion-format"),
        ("140%", "origin-criterion-format"),
        ("40", "origin-criterion-format"),
        ("PC 40%", "partial-cumulation-out-of-range"),
        ("PC 19.5%", "partial-cumulation-out-of-range"),
        ("35%", "origin-criterion-cannot-confer-origin"),
        ("RVC 39.5%", "origin-criterion-cannot-confer-origin"),
        ("0%", "origin-criterion-cannot-confer-origin"),
        ("CTH + 0%", "origin-criterion-cannot-confer-origin"),
        ("RVC", "origin-criterion-format"),
    ],
)
def test_bad_origin_criteria_are_refused(validator: Validator, criterion: str, code: str) -> None:
    """Box 8 refuses codes outside Note 3 and PC percentages outside 20 <= x < 40."""
    flag = (b"PartialCumulationIndicator>false", b"PartialCumulationIndicator>true")
    edits = [
        (CRITERION, f"<fdx:OriginCriterionCode>{criterion}</fdx:OriginCriterionCode>".encode())
    ]
    if criterion.startswith("PC"):
        edits.append(flag)
    assert _codes(validator, *edits) == [code]


def test_origin_finding_reads_well_for_an_officer(validator: Validator) -> None:
    """The Box 8 message names the box, the item, the bad code and the allowed forms."""
    data = SAMPLE_FORMD.read_bytes().replace(CRITERION, CRITERION.replace(b"CTH", b"CTX"))
    (finding,) = validator.check(parse(data), now=NOW).findings
    assert finding.message.startswith(
        "Box 8, goods item 1: the origin criterion 'CTX' is not one of WO, CC, CTH, CTSH, SP"
    )
    assert finding.box == "8"
    assert finding.line == 86
    assert finding.path is not None and finding.path.endswith("fdx:OriginCriterionCode")


def test_fob_is_needed_for_rvc_only_when_kh_id_or_la_is_involved(validator: Validator) -> None:
    """An RVC item without FOB is fine SG to TH, but not MY to KH."""
    sample = "formd/valid/my-kh-rvc-fob.xml"
    data = (SAMPLES / sample).read_bytes()
    fob_start = data.index(b"<fdx:FOBValueAmount")
    fob_end = data.index(b"</fdx:FOBValueAmount>") + len(b"</fdx:FOBValueAmount>")
    assert _codes(validator, (data[fob_start:fob_end], b""), sample=sample) == ["fob-value-missing"]
    assert _codes(validator, (CRITERION, CRITERION.replace(b"CTH", b"40%"))) == []


def test_fob_is_not_needed_for_a_tariff_shift(validator: Validator) -> None:
    """A CTH item going to Cambodia needs no FOB value."""
    sample = "formd/valid/my-kh-rvc-fob.xml"
    data = (SAMPLES / sample).read_bytes()
    fob_start = data.index(b"<fdx:FOBValueAmount")
    fob_end = data.index(b"</fdx:FOBValueAmount>") + len(b"</fdx:FOBValueAmount>")
    edits = ((data[fob_start:fob_end], b""), (b">40%<", b">CTH<"))
    assert _codes(validator, *edits, sample=sample) == []


@pytest.mark.parametrize(
    ("hs", "ok"),
    [
        ("848210", True),
        ("8482.10.00", True),
        ("8482", False),
        ("848210001", False),
        ("8482100000", True),
        ("84821000001", False),
    ],
)
def test_hs_code_has_6_or_8_digits(validator: Validator, hs: str, ok: bool) -> None:
    """Box 7 HS code: 6, 8 (AHTN) or 10 (national) digits, dots allowed."""
    codes = _codes(validator, (b"<fd:ID>84821000<", f"<fd:ID>{hs}<".encode()))
    assert codes == ([] if ok else ["hs-code-length"])


@pytest.mark.parametrize(
    ("issued", "codes"),
    [
        ("2027-11-21", []),
        ("2027-11-22", ["retroactive-issue-too-late"]),
        ("2026-11-25", []),
        ("2026-11-24", ["retroactive-flag-unneeded"]),
        ("2026-11-21", ["retroactive-flag-unneeded"]),
    ],
)
def test_retroactive_issue_is_allowed_for_one_year_after_shipment(
    validator: Validator, issued: str, codes: list[str]
) -> None:
    """Rule 10(2): the tick is needed after shipment + 3 days and allowed up to one year."""
    edits = (
        (b"<fd:IssueDateTime>2026-11-19", f"<fd:IssueDateTime>{issued}".encode()),
        (b"IssuedRetroactivelyIndicator>false", b"IssuedRetroactivelyIndicator>true"),
    )
    assert _codes(validator, *edits, now=datetime(2028, 1, 1, tzinfo=UTC)) == codes


@pytest.mark.parametrize(
    ("issued", "codes"),
    [
        ("2026-11-21", []),
        ("2026-11-24", []),
        ("2026-11-25", ["issue-date-after-departure"]),
    ],
)
def test_issue_up_to_three_days_after_shipment_needs_no_flag(
    validator: Validator, issued: str, codes: list[str]
) -> None:
    """Rule 10(1): unflagged issue is allowed up to three days after the 2026-11-21 shipment."""
    edit = (b"<fd:IssueDateTime>2026-11-19", f"<fd:IssueDateTime>{issued}".encode())
    assert _codes(validator, edit) == codes


def test_late_issue_finding_quotes_the_rule(validator: Validator) -> None:
    """The late-issue error names the day count and points to the retroactive tick."""
    data = SAMPLE_FORMD.read_bytes().replace(
        b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>2026-11-30"
    )
    (finding,) = validator.check(parse(data), now=NOW).findings
    assert finding.box == "12"
    assert "9 days after the departure date 2026-11-21" in finding.message
    assert finding.hint is not None and "Issued Retroactively" in finding.hint


@pytest.mark.parametrize(("ahead", "codes"), [(4, []), (6, ["datetime-in-future"])])
def test_creation_time_may_be_5_minutes_ahead(
    validator: Validator, ahead: int, codes: list[str]
) -> None:
    """The header's creation time tolerates 5 minutes of clock skew, no more."""
    created = datetime(2026, 11, 20, 1, 15, tzinfo=UTC)  # the sample's 09:15+08:00
    assert _codes(validator, now=created - timedelta(minutes=ahead)) == codes


def test_replacement_without_reference_is_refused(validator: Validator) -> None:
    """A replacement (function 5) must carry ReferencedMessageID."""
    edit = (b"<cm:FunctionCode>9", b"<cm:FunctionCode>5")
    assert _codes(validator, edit) == ["reference-missing"]


def test_header_and_body_countries_must_agree(validator: Validator) -> None:
    """The exporting country is the header's sender and the importing one its receiver."""
    edit = (b"<fd:ID>SG</fd:ID></fd:ExportCountry>", b"<fd:ID>MY</fd:ID></fd:ExportCountry>")
    assert _codes(validator, edit) == ["export-country-not-sender"]


def test_acdd_country_findings_have_no_box(validator: Validator) -> None:
    """ACDD rules share the country checks but name no Form D box."""
    data = (SAMPLES / "acdd/valid/sg-my-electronics.xml").read_bytes()
    data = data.replace(
        b"<ac:CountryCode>MY</ac:CountryCode></ac:Destination>",
        b"<ac:CountryCode>SG</ac:CountryCode></ac:Destination>",
    )
    (finding,) = validator.check(parse(data), now=NOW).findings
    assert finding.code == "countries-identical"
    assert finding.box is None


def test_check_rules_is_pure_over_the_tree() -> None:
    """Running the rules twice gives the same findings and leaves the tree unchanged."""
    root = parse(SAMPLE_FORMD.read_bytes().replace(b"<fd:ID>84821000", b"<fd:ID>8482"))
    before = parse(SAMPLE_FORMD.read_bytes().replace(b"<fd:ID>84821000", b"<fd:ID>8482"))
    first = check_rules(root, DocumentType.FORM_D, now=NOW)
    assert first == check_rules(root, DocumentType.FORM_D, now=NOW)
    assert etree.tostring(root) == etree.tostring(before)


def test_catalogue_codes_are_unique_kebab_case_with_known_severities() -> None:
    """Every rule code is stable kebab-case with severity error or warning."""
    assert len(CATALOGUE) >= 25
    for code, rule in CATALOGUE.items():
        assert code == rule.code
        assert code == code.lower() and " " not in code
        assert rule.severity in {"error", "warning"}
        assert rule.box in {None, "header", *map(str, range(1, 14))}


# --- issue 17: the OCP rules as the ATIGA text writes them ----------------------------------

B2B_SAMPLE = "formd/valid/th-id-back-to-back.xml"
EXHIBITION_SAMPLE = "formd/valid/id-my-exhibition.xml"
ITEM1_ORIGIN = b"<fd:CountryCode>SG</fd:CountryCode>\n          <fdx:OriginCriterionCode>CTH"


def test_origin_is_the_exporting_state_even_with_accumulation(validator: Validator) -> None:
    """Class 5: a Singapore Form D cannot certify Malaysian origin, accumulation or not."""
    wrong = (ITEM1_ORIGIN, ITEM1_ORIGIN.replace(b"SG", b"MY"))
    accumulation = (b"AccumulationIndicator>false", b"AccumulationIndicator>true")
    assert _codes(validator, wrong) == ["origin-country-not-exporting-state"]
    assert _codes(validator, wrong, accumulation) == ["origin-country-not-exporting-state"]
    assert _codes(validator, accumulation) == []


def test_timor_leste_origin_is_an_asean_origin_not_a_foreign_one(validator: Validator) -> None:
    """Timor-Leste (a member since October 2025) as origin is the wrong state, not a non-member."""
    timor = (ITEM1_ORIGIN, ITEM1_ORIGIN.replace(b"SG", b"TL"))
    assert _codes(validator, timor) == ["origin-country-not-exporting-state"]
    outside = (ITEM1_ORIGIN, ITEM1_ORIGIN.replace(b"SG", b"CN"))
    assert "origin-country-not-exporting-state" not in _codes(validator, outside)
    assert len(_codes(validator, outside)) == 1


@pytest.mark.parametrize(
    ("original", "country", "origin", "codes"),
    [
        ("2026-06-30", "VN", "VN", []),
        ("2025-07-31", "VN", "VN", []),
        ("2026-07-31", "VN", "VN", []),
        ("2025-07-30", "VN", "VN", ["back-to-back-original-expired"]),
        ("2026-08-01", "VN", "VN", ["back-to-back-original-not-earlier"]),
        ("2026-06-30", "TH", "TH", ["back-to-back-original-same-country"]),
        ("2026-06-30", "VN", "MY", ["back-to-back-origin-mismatch"]),
    ],
)
def test_back_to_back_original_comes_first_from_elsewhere_and_is_valid(
    validator: Validator, original: str, country: str, origin: str, codes: list[str]
) -> None:
    """Class 6: the original is from another Member State, earlier, valid 12 months (Rules
    1(b), 11, 14); items keep its origin (the back-to-back Form D is issued 2026-07-31)."""
    edits = (
        (b"<fdx:IssueDate>2026-06-30<", f"<fdx:IssueDate>{original}<".encode()),
        (b"<fdx:IssuingCountryCode>VN<", f"<fdx:IssuingCountryCode>{country}<".encode()),
        (b"<fd:CountryCode>VN</fd:CountryCode>\n          <fdx:Orig",
         f"<fd:CountryCode>{origin}</fd:CountryCode>\n          <fdx:Orig".encode()),
    )  # fmt: skip
    assert _codes(validator, *edits, sample=B2B_SAMPLE) == codes


def test_back_to_back_needs_the_originals_country(validator: Validator) -> None:
    """Class 6: a ticked back-to-back Form D names the original's issuing Member State."""
    edit = (b"<fdx:IssuingCountryCode>VN</fdx:IssuingCountryCode>", b"")
    assert _codes(validator, edit, sample=B2B_SAMPLE) == ["back-to-back-original-incomplete"]


@pytest.mark.parametrize(
    ("country", "codes"),
    [("MY", []), ("TH", []), ("ID", ["exhibition-not-in-member-state"]),
     ("CN", ["exhibition-not-in-member-state"])],
)  # fmt: skip
def test_exhibition_is_held_in_another_member_state(
    validator: Validator, country: str, codes: list[str]
) -> None:
    """Class 7, Rule 22: the exhibition is in a Member State other than the exporting one."""
    data = (SAMPLES / EXHIBITION_SAMPLE).read_bytes()
    start = data.index(b"<fdx:Exhibition>")
    old = data[start : data.index(b"</fdx:Exhibition>")]
    new = old.replace(b"<cm:CountryCode>MY<", f"<cm:CountryCode>{country}<".encode())
    assert _codes(validator, (old, new), sample=EXHIBITION_SAMPLE) == codes


@pytest.mark.parametrize(
    ("invoiced", "codes"),
    [
        ("2026-11-19", []),
        ("2025-01-10", []),
        ("2026-11-20", ["invoice-date-after-issue"]),
        ("2569-11-17", ["invoice-date-implausible"]),
        ("1926-11-17", ["invoice-date-implausible"]),
    ],
)
def test_invoice_dates_are_gregorian_and_not_after_issue(
    validator: Validator, invoiced: str, codes: list[str]
) -> None:
    """Class 8, Box 10: invoice dates are plausible Gregorian dates on or before issue."""
    edit = (b"<fd:IssueDateTime>2026-11-17", f"<fd:IssueDateTime>{invoiced}".encode())
    assert _codes(validator, edit) == codes


def test_buddhist_era_invoice_date_is_explained(validator: Validator) -> None:
    """A Buddhist-era year is named as such, with its Gregorian year, in Box 10."""
    data = SAMPLE_FORMD.read_bytes().replace(
        b"<fd:IssueDateTime>2026-11-17", b"<fd:IssueDateTime>2569-11-17"
    )
    (finding,) = validator.check(parse(data), now=NOW).findings
    assert finding.box == "10" and finding.severity == "error"
    assert "Buddhist-era year (2026 in the Gregorian calendar)" in finding.message
    assert finding.path is not None and finding.path.endswith("fd:Invoice/fd:IssueDateTime")


@pytest.mark.parametrize(
    ("declared", "codes"),
    [("2026-11-19", []), ("2026-11-20", ["declaration-after-certification"])],
)
def test_exporter_declares_before_the_authority_certifies(
    validator: Validator, declared: str, codes: list[str]
) -> None:
    """Class 8: the Box 11 declaration date is not after the Box 12 issue date."""
    edit = (b"<fdx:DeclarationDate>2026-11-18", f"<fdx:DeclarationDate>{declared}".encode())
    assert _codes(validator, edit) == codes


def test_de_minimis_needs_a_tariff_shift_criterion(validator: Validator) -> None:
    """Class 9, ATIGA Art. 33: De Minimis with WO only is refused, with CTH it passes."""
    tick = (b"DeMinimisIndicator>false", b"DeMinimisIndicator>true")
    assert _codes(validator, tick) == []
    assert _codes(validator, tick, sample=EXHIBITION_SAMPLE) == ["de-minimis-without-tariff-shift"]


def test_fob_where_no_rule_requires_it_is_one_warning(validator: Validator) -> None:
    """Class 9, Rule 25: FOB on a CTH item SG to TH is one warning; the document stays valid."""
    fob = b'<fdx:FOBValueAmount currencyID="USD">1.00</fdx:FOBValueAmount>'
    data = SAMPLE_FORMD.read_bytes().replace(b"</fd:Origin>", b"</fd:Origin>" + fob)
    report = validator.check(parse(data), now=NOW)
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.box) == (
        "fob-value-not-required",
        "warning",
        "9",
    )
    assert "2 goods item(s) (first: item 1)" in finding.message
    assert finding.hint is not None and "Rule 25" in finding.hint
    assert report.valid


def test_exporter_address_abroad_is_a_warning(validator: Validator) -> None:
    """Class 9: an exporter address outside the exporting country warns, Box 1."""
    data = SAMPLE_FORMD.read_bytes()
    start = data.index(b"<fd:Exporter>")
    old = data[start : data.index(b"</fd:Exporter>")]
    new = old.replace(b"<cm:CountryCode>SG<", b"<cm:CountryCode>MY<")
    report = validator.check(parse(data.replace(old, new)), now=NOW)
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.box) == (
        "exporter-address-outside-exporting-country",
        "warning",
        "1",
    )
    assert report.valid


@pytest.mark.parametrize(
    ("value", "codes"), [("false", []), ("true", ["certified-true-copy-not-for-eform-d"])]
)
def test_certified_true_copy_does_not_apply_to_e_form_d(
    validator: Validator, value: str, codes: list[str]
) -> None:
    """Class 11, Rule 26(2): an e-Form D marked as a certified true copy is refused."""
    mark = f"<fdx:CertifiedTrueCopyIndicator>{value}</fdx:CertifiedTrueCopyIndicator>"
    edit = (b"</fdx:IssuingAuthority>", f"</fdx:IssuingAuthority>{mark}".encode())
    assert _codes(validator, edit) == codes


def test_response_issue_date_time_carries_wco_d029() -> None:
    """Class 11: the Customs Response's IssueDateTime is WCO D029, the response issuing date."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    schema = etree.parse(str(XSD_DIR / "response" / "response-1.xsd"))
    (element,) = [
        el
        for el in schema.iter(f"{xs}element")
        if el.get("name") == "IssueDateTime" and el.getparent() is not None
    ]
    assert [w.text for w in element.iter("WCOID")] == ["D029"]


ISSUE17_CODES = {
    "origin-criterion-cannot-confer-origin",
    "origin-country-not-exporting-state",
    "back-to-back-original-same-country",
    "back-to-back-original-not-earlier",
    "back-to-back-original-expired",
    "back-to-back-origin-mismatch",
    "exhibition-not-in-member-state",
    "invoice-date-implausible",
    "invoice-date-after-issue",
    "declaration-after-certification",
    "de-minimis-without-tariff-shift",
    "fob-value-not-required",
    "exporter-address-outside-exporting-country",
    "certified-true-copy-not-for-eform-d",
}


def test_issue17_findings_carry_everything_an_officer_needs(validator: Validator) -> None:
    """Every new rule's sample finding has code, severity, box, path, line, message and hint."""
    seen = set()
    for path in sorted((SAMPLES / "formd").glob("*/*.xml")):
        for f in validator.check(parse(path.read_bytes()), now=NOW).findings:
            if f.code in ISSUE17_CODES:
                seen.add(f.code)
                assert f.severity == CATALOGUE[f.code].severity
                assert f.box == CATALOGUE[f.code].box and f.message.startswith("Box ")
                assert f.path and f.line and f.hint, f
    assert seen == ISSUE17_CODES


def test_boxed_if_keeps_the_box_only_for_a_boxed_document() -> None:
    """Rule.boxed_if(True) is the rule itself; boxed_if(False) the same rule without its box."""
    assert HS_UNKNOWN.box is not None
    assert HS_UNKNOWN.boxed_if(True) is HS_UNKNOWN
    assert HS_UNKNOWN.boxed_if(False) == HS_UNKNOWN.without_box()
    assert HS_UNKNOWN.boxed_if(False).box is None


def test_a_rejection_of_an_origin_declaration_is_checked_like_one_of_a_form_d(
    validator: Validator,
) -> None:
    """MY's rejection of SG's Origin Declaration (TypeCode OD) passes; past 60 days it is
    refused with rejection-after-60-days, and the message names the Origin Declaration."""
    sample = "rejection/valid/my-sg-origin-declaration-rejected.xml"
    assert _codes(validator, sample=sample) == []
    data = (SAMPLES / sample).read_bytes().replace(b"2026-11-20<", b"2026-09-01<", 1)
    report = validator.check(parse(data), now=NOW)
    (late,) = report.errors
    assert late.code == "rejection-after-60-days"
    assert "after the Origin Declaration was received (2026-09-01)" in late.message
