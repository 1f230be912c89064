"""Validation: XSD findings and rule findings, kept apart, with stable codes."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.parsing import parse
from gateway.core.schemas import XSD_CODES, ExplainLimits
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


# --- refusals explained from xmlschema's structured errors ---------------------------------

MANIFEST: list[dict[str, Any]] = json.loads((SAMPLES / "manifest.json").read_text())
XSD_SAMPLES = [e for e in MANIFEST if any(c.startswith("xsd-") for c in e["codes"])]


@pytest.fixture(name="log_validator", scope="module")
def _log_validator() -> Validator:
    return Validator.load(XSD_DIR, ExplainLimits(max_elements=0))


def test_xmlschema_loads_every_document_schema_from_the_same_files(validator: Validator) -> None:
    """The explainer builds an xmlschema schema for each document type from xsd/."""
    for doc_type in DocumentType:
        assert isinstance(validator.explainer.schema(doc_type), xmlschema.XMLSchema10)


@pytest.mark.parametrize("entry", XSD_SAMPLES, ids=[e["file"] for e in XSD_SAMPLES])
def test_explanation_and_libxml2_log_agree_on_code_path_and_line(
    validator: Validator, log_validator: Validator, entry: dict[str, Any]
) -> None:
    """Each XSD sample gets the same codes, paths, lines and boxes from xmlschema as libxml2."""
    root = parse((SAMPLES / entry["file"]).read_bytes())
    explained = validator.check(root, now=NOW).schema_findings
    logged = log_validator.check(root, now=NOW).schema_findings
    assert [(f.code, f.path, f.line, f.box) for f in explained] == [
        (f.code, f.path, f.line, f.box) for f in logged
    ]
    assert sorted({f.code for f in explained}) == entry["codes"]
    assert all("too large" not in (f.hint or "") for f in explained)
    assert all("too large" in (f.hint or "") for f in logged)


def test_misplaced_element_is_located_at_itself_and_names_what_was_expected(
    validator: Validator,
) -> None:
    """An unexpected element is reported on its own line and path, naming the expected one."""
    (finding,) = _check(validator, (b"<fd:Consignment>", b"<fd:Bogus/><fd:Consignment>")).findings
    assert finding.code == "xsd-unexpected-element"
    assert finding.path is not None and finding.path.endswith("/fd:GoodsShipment/fd:Bogus")
    assert finding.line == SAMPLE_FORMD.read_bytes().split(b"<fd:Consignment>")[0].count(b"\n") + 1
    assert finding.message.startswith("Found the bogus where ")
    assert "was expected" in finding.message


def test_missing_element_names_the_element_to_add(validator: Validator) -> None:
    """Incomplete content is xsd-missing-element on the parent, naming the missing child."""
    data = SAMPLE_FORMD.read_bytes()
    start = data.index(b"<fdx:PartialCumulationIndicator>")
    end = data.index(b"</fdx:PartialCumulationIndicator>") + len(
        b"</fdx:PartialCumulationIndicator>"
    )
    report = validator.check(parse(data[:start] + data[end:]), now=NOW)
    (finding,) = report.findings
    assert finding.code == "xsd-missing-element"
    assert finding.box == "13"
    assert finding.path is not None and finding.path.endswith("fdx:CertificateFlags")
    assert finding.hint == "Add PartialCumulationIndicator."


def test_unexpected_attribute_is_named(validator: Validator) -> None:
    """An attribute the schema does not allow is xsd-unexpected-attribute, by name."""
    (finding,) = _check(
        validator, (b' unitCode="KGM">486.5', b' unitCode="KGM" colour="red">486.5')
    ).findings
    assert finding.code == "xsd-unexpected-attribute"
    assert "colour" in finding.message
    assert finding.box == "9"


def test_value_messages_say_the_type_and_the_length(validator: Validator) -> None:
    """A bad date names the date format; an over-long name says its length and the limit."""
    date_report = _check(
        validator, (b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>19/11/2026")
    )
    (date,) = date_report.findings
    assert date.message == "Box 12: the issue date '19/11/2026' is not a valid date (YYYY-MM-DD)."
    long_name = b"<cm:Name>" + b"X" * 71
    (name,) = _check(validator, (b"<cm:Name>Lion City", long_name + b"Lion City")).findings
    assert name.code == "xsd-invalid-value"
    assert "at most 70 are allowed" in name.message


def test_explanation_stops_after_max_errors() -> None:
    """With max_errors=1, a document with two errors gets one finding."""
    validator = Validator.load(XSD_DIR, ExplainLimits(max_errors=1))
    report = _check(
        validator,
        (b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT"),
        (b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>19/11/2026"),
    )
    assert len(report.schema_findings) == 1
    assert (
        len(
            _check(
                Validator.load(XSD_DIR),
                *[
                    (b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT"),
                    (b"<fd:IssueDateTime>2026-11-19", b"<fd:IssueDateTime>19/11/2026"),
                ],
            ).schema_findings
        )
        == 2
    )


def test_document_over_the_element_cap_is_explained_from_the_libxml2_log() -> None:
    """Above max_elements xmlschema is not run: codes and paths come from libxml2's log."""
    validator = Validator.load(XSD_DIR, ExplainLimits(max_elements=50))
    (finding,) = _check(validator, (b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT")).findings
    assert finding.code == "xsd-not-in-code-list"
    assert finding.box == "7"
    assert "urn:" not in finding.message
    assert finding.hint is not None and "too large" in finding.hint
    assert validator.explainer._schemas == {}  # xmlschema was never loaded


def test_schema_location_hints_in_a_refused_document_are_never_fetched(
    validator: Validator,
) -> None:
    """An xsi:schemaLocation pointing at a live HTTP server is not fetched when explaining."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hint = (
            b'<cm:MessageHeader xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            b'xsi:schemaLocation="urn:asw-gw:datamodel:Common_DS:1 http://127.0.0.1:'
            + str(server.server_address[1]).encode()
            + b'/common.xsd">'
        )
        report = _check(
            validator, (b"<cm:MessageHeader>", hint), (b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT")
        )
        assert [f.code for f in report.findings] == ["xsd-not-in-code-list"]
        hinted = SAMPLE_FORMD.read_bytes().replace(b"<cm:MessageHeader>", hint, 1)
        assert validator.render(parse(hinted))
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []
