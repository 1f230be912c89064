"""Business rules over XSD-valid Form D, ACDD, response and receipt trees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.core.codelists import CATALOGUE
from gateway.core.envelope import DocumentType
from gateway.core.parsing import parse
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
    ["WO", "CC", "CTH", "CTSH", "SP", "40%", "62.5%", "CTSH + 35%", "CTH+40%", "cth", "PC 20%"],
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
        ("2026-11-22", []),
        ("2026-11-21", ["retroactive-flag-unneeded"]),
    ],
)
def test_retroactive_issue_is_allowed_for_one_year_after_shipment(
    validator: Validator, issued: str, codes: list[str]
) -> None:
    """Rule 10(2): flagged retroactive issue within one year of the 2026-11-21 departure."""
    edits = (
        (b"<fd:IssueDateTime>2026-11-19", f"<fd:IssueDateTime>{issued}".encode()),
        (b"IssuedRetroactivelyIndicator>false", b"IssuedRetroactivelyIndicator>true"),
    )
    assert _codes(validator, *edits, now=datetime(2028, 1, 1, tzinfo=UTC)) == codes


def test_issue_after_departure_needs_the_retroactive_flag(validator: Validator) -> None:
    """Rule 10(1): unflagged, the issue date may not be after departure."""
    edit = (b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>2026-11-22")
    assert _codes(validator, edit) == ["issue-date-after-departure"]
    same_day = (b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>2026-11-21")
    assert _codes(validator, same_day) == []


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
