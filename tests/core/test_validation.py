"""Validation: XSD findings and rule findings, kept apart, with stable codes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.parsing import parse
from gateway.core.schemas import XSD_CODES
from gateway.core.validation import ValidationReport, Validator
from gateway.errors import BusinessRuleViolation, SchemaViolation, UnknownDocumentType

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"
SAMPLE_FORMD = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


def _check(validator: Validator, *edits: tuple[bytes, bytes]) -> ValidationReport:
    data = SAMPLE_FORMD.read_bytes()
    for old, new in edits:
        assert old in data
        data = data.replace(old, new, 1)
    return validator.check(parse(data), now=NOW)


def test_loads_a_schema_for_every_document_type(validator: Validator) -> None:
    """Validator.load compiles the Form D, ACDD, response and receipt schemas."""
    assert set(validator.schemas) == set(DocumentType)


def test_the_basic_sample_is_valid_without_findings(validator: Validator) -> None:
    """The 5 KB SG to TH Form D passes the XSD and every rule."""
    report = _check(validator)
    assert report.valid
    assert report.schema_valid
    assert report.findings == ()
    assert report.document_type is DocumentType.FORM_D
    assert report.refusal() is None


def test_schema_findings_are_separate_and_refuse_as_schema_violation(validator: Validator) -> None:
    """An XSD failure fills schema_findings only and refuses with SchemaViolation."""
    report = _check(validator, (b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT"))
    assert not report.valid
    assert not report.schema_valid
    assert report.rule_findings == ()
    assert [f.code for f in report.schema_findings] == ["xsd-not-in-code-list"]
    refusal = report.refusal()
    assert isinstance(refusal, SchemaViolation)
    assert refusal.findings == report.schema_findings


def test_rule_findings_refuse_as_business_rule_violation(validator: Validator) -> None:
    """A rule error fills rule_findings and refuses with BusinessRuleViolation."""
    report = _check(validator, (b"<fd:ID>84821000", b"<fd:ID>8482"))
    assert report.schema_valid
    assert [f.code for f in report.rule_findings] == ["hs-code-length"]
    assert isinstance(report.refusal(), BusinessRuleViolation)


def test_warnings_alone_keep_the_document_valid(validator: Validator) -> None:
    """A warning-only report is valid and has no refusal."""
    report = _check(
        validator,
        (b"<fdx:IssuedRetroactivelyIndicator>false", b"<fdx:IssuedRetroactivelyIndicator>true"),
    )
    assert [f.severity for f in report.findings] == ["warning"]
    assert report.valid
    assert report.refusal() is None


def test_xsd_finding_names_box_item_line_and_path(validator: Validator) -> None:
    """An XSD finding in a goods item says Box 7, the item, the line and the XPath."""
    (finding,) = _check(validator, (b"<fd:ID>84821000", b"<fd:ID>8482A")).findings
    assert finding.code == "xsd-invalid-value"
    assert finding.box == "7"
    assert finding.message.startswith("Box 7, goods item 1: the HS code '8482A'")
    assert finding.line == 78
    assert finding.path is not None
    assert finding.path.endswith(
        "GovernmentAgencyGoodsItem[1]/fd:Commodity/fd:Classification/fd:ID"
    )
    assert finding.hint


def test_missing_attribute_and_duplicate_item_codes(validator: Validator) -> None:
    """A missing unitCode and a repeated item number get their own stable codes."""
    report = _check(
        validator,
        (b' unitCode="KGM">486.5', b">486.5"),
        (b"<fd:SequenceNumeric>2<", b"<fd:SequenceNumeric>1<"),
    )
    assert sorted(f.code for f in report.findings) == ["xsd-duplicate-key", "xsd-missing-attribute"]
    assert all(f.code in XSD_CODES for f in report.findings)


def test_libxml2_namespaces_never_reach_the_message(validator: Validator) -> None:
    """Messages name elements as officers know them, never {urn:...}Name."""
    report = _check(validator, (b"<fd:Consignment>", b"<fd:Bogus/><fd:Consignment>"))
    assert report.findings
    assert all("urn:" not in f.message for f in report.findings)


def test_unknown_root_raises_unknown_document_type(validator: Validator) -> None:
    """A root the gateway does not know is refused before any schema runs."""
    with pytest.raises(UnknownDocumentType):
        validator.check(etree.fromstring(b"<Invoice/>"), now=NOW)


def test_naive_now_is_taken_as_utc(validator: Validator) -> None:
    """check() accepts a naive now and treats it as UTC."""
    report = validator.check(parse(SAMPLE_FORMD.read_bytes()), now=datetime(2026, 12, 1))
    assert report.valid


def test_document_type_without_schema_is_reported(tmp_path: Path) -> None:
    """With no Form D schema installed, check() reports document-type-not-enabled."""
    for name in ("common", "codelists", "acdd"):
        shutil.copytree(XSD_DIR / name, tmp_path / name)
    validator = Validator.load(tmp_path)
    report = validator.check(parse(SAMPLE_FORMD.read_bytes()), now=NOW)
    assert [f.code for f in report.findings] == ["document-type-not-enabled"]
    assert not report.valid
