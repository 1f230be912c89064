"""Official code lists and the HS nomenclature: the data, the generated XSDs and the rules."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from gateway import codelist_xsd
from gateway.core import code_lists, nomenclature
from gateway.core.parsing import parse
from gateway.core.validation import Validator
from tests.conftest import SAMPLE_FORMD, SAMPLES, XSD_DIR

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACDD = SAMPLES / "acdd" / "valid" / "sg-my-electronics.xml"


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


def _findings(
    validator: Validator, *edits: tuple[bytes, bytes], sample: Path = SAMPLE_FORMD
) -> list[tuple[str, str, str | None]]:
    data = sample.read_bytes()
    for old, new in edits:
        assert old in data, old
        data = data.replace(old, new, 1)
    report = validator.check(parse(data), now=NOW)
    return sorted((f.code, f.severity, f.box) for f in report.findings)


# --- the data -----------------------------------------------------------------------------


def test_lists_are_complete_not_subsets() -> None:
    """The lists hold the official row counts of the README's version table."""
    assert len(code_lists.transport_modes()) == 10
    assert len(code_lists.currencies()) == 178
    rec21 = code_lists.package_types()
    assert len([c for c in rec21 if len(c) == 2]) == 406
    assert {"FE", "JB", "WA", "PX", "0", "9"} <= set(rec21)
    assert "7" not in rec21  # Annex I: "(for future use)"
    units = code_lists.units()
    assert len([u for u in units if not u.startswith("X")]) >= 2136 - 10
    assert {"CTM", "KGM", "H87", "XBX", "XFE"} <= set(units)
    assert len(code_lists.locations()) == 2322 + 11


def test_retired_units_are_the_deleted_and_deprecated_rec20_codes() -> None:
    """KG (keg) is marked deleted, NPR deprecated, KGM current."""
    retired = code_lists.retired_units()
    assert retired["KG"].status == "X"
    assert retired["NPR"].status == "D"
    assert "KGM" not in retired
    assert len(retired) >= 309 + 71 - 5


def test_hs_edition_is_chosen_by_the_certificate_date() -> None:
    """HS 2022 from 1 January 2022; before that no edition is held, so nothing is checked."""
    assert nomenclature.edition_on(date(2026, 11, 20)) == nomenclature.EDITIONS[0]
    assert nomenclature.edition_on(date(2022, 1, 1)) == nomenclature.EDITIONS[0]
    assert nomenclature.edition_on(date(2021, 12, 31)) is None


@pytest.mark.parametrize(
    ("code", "missing"),
    [
        ("848210", None),
        ("85241100", None),  # new in HS 2022
        ("7701000000", "chapter"),  # chapter 77 is reserved
        ("849910", "heading"),
        ("847199", "subheading"),
        ("854900", "subheading"),  # heading 8549 exists, 854900 does not
    ],
)
def test_missing_level_names_the_first_level_that_does_not_exist(
    code: str, missing: str | None
) -> None:
    """A code's chapter, heading and subheading are looked up in that order."""
    hs = nomenclature.load(nomenclature.EDITIONS[0])
    assert hs.missing_level(code) == missing


# --- the generated XSDs -------------------------------------------------------------------


def test_committed_code_list_schemas_are_the_generated_ones(tmp_path: Path) -> None:
    """xsd/codelists matches `python -m gateway.codelist_xsd` byte for byte (no drift)."""
    (tmp_path / "codelists").mkdir()
    for path in codelist_xsd.write(tmp_path):
        assert path.read_bytes() == (XSD_DIR / "codelists" / path.name).read_bytes(), path.name


def test_generated_schemas_name_their_list_version() -> None:
    """Each generated schema carries its source edition in its annotation and @version."""
    root = etree.parse(str(XSD_DIR / "codelists" / "unit-1.xsd")).getroot()
    assert root.get("version") == "Rev.17"
    doc = root.findtext("{http://www.w3.org/2001/XMLSchema}annotation/"
                        "{http://www.w3.org/2001/XMLSchema}documentation")  # fmt: skip
    assert doc is not None and code_lists.REC20 in doc


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint is not installed")
@pytest.mark.parametrize("kind", ["formd", "acdd", "response", "receipt"])
def test_schemas_with_the_full_lists_compile_in_xmllint(kind: str) -> None:
    """libxml2's command-line tool compiles every document schema with the generated lists."""
    schema = f"{kind}/{kind}-1.xsd"
    sample = sorted((SAMPLES / kind / "valid").glob("*.xml"))[0]
    done = subprocess.run(
        ["xmllint", "--noout", "--schema", str(XSD_DIR / schema), str(sample)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- class 2: code lists in documents -----------------------------------------------------


@pytest.mark.parametrize(
    ("package", "unit"),
    [("FE", "LTR"), ("JB", "KGM"), ("WA", "XWA"), ("BX", "CTM"), ("4", "H87"), ("SX", "SET")],
)
def test_official_package_types_and_units_are_accepted(
    validator: Validator, package: str, unit: str
) -> None:
    """Flexitank, jumbo bag, IBC, carat, Annex I one-digit codes: no finding at all."""
    edits = (
        (b"<fd:TypeCode>CT<", f"<fd:TypeCode>{package}<".encode()),
        (b'TariffQuantity unitCode="H87"', f'TariffQuantity unitCode="{unit}"'.encode()),
    )
    assert _findings(validator, *edits) == []


@pytest.mark.parametrize("unit", ["PCE", "X1Z", "ZZZ"])
def test_unit_outside_rec20_is_a_box_9_error(validator: Validator, unit: str) -> None:
    """A unit Rec 20 does not define (nor X plus a Rec 21 code) is unit-code-unknown."""
    data = SAMPLE_FORMD.read_bytes().replace(
        b'TariffQuantity unitCode="H87"', f'TariffQuantity unitCode="{unit}"'.encode(), 1
    )
    report = validator.check(parse(data), now=NOW)
    assert report.schema_valid and not report.valid
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.box) == ("unit-code-unknown", "error", "9")
    assert finding.message.startswith("Box 9, goods item 1: the unit")
    assert "Revision 17" in finding.message and finding.hint and finding.line


@pytest.mark.parametrize("unit", ["kg", "KILO", "K"])
def test_unit_not_in_the_form_of_a_code_is_a_schema_error(validator: Validator, unit: str) -> None:
    """The XSD keeps the form of a Rec 20 code (2 or 3 capitals or digits)."""
    edit = (b'TariffQuantity unitCode="H87"', f'TariffQuantity unitCode="{unit}"'.encode())
    assert _findings(validator, edit) == [("xsd-invalid-value", "error", "9")]


@pytest.mark.parametrize(("unit", "state"), [("NPR", "deprecated"), ("KG", "deleted")])
def test_retired_unit_is_a_warning_naming_the_rec20_revision(
    validator: Validator, unit: str, state: str
) -> None:
    """A deleted or deprecated Rec 20 unit is a Box 9 warning for that goods item."""
    data = SAMPLE_FORMD.read_bytes().replace(
        b'TariffQuantity unitCode="H87"', f'TariffQuantity unitCode="{unit}"'.encode(), 1
    )
    report = validator.check(parse(data), now=NOW)
    assert report.valid
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.box) == ("unit-code-retired", "warning", "9")
    assert finding.message.startswith("Box 9, goods item 1:")
    assert state in finding.message and "Revision 17" in finding.message
    assert finding.line is not None and finding.path is not None


@pytest.mark.parametrize("currency", ["SGD", "XAU", "CHE"])
def test_iso4217_codes_in_use_are_accepted_and_withdrawn_ones_refused(
    validator: Validator, currency: str
) -> None:
    """FOB in any List One code passes; HRK (withdrawn 2023) is not in the list."""
    sample = SAMPLES / "formd" / "valid" / "my-kh-rvc-fob.xml"
    ok = (b'currencyID="USD"', f'currencyID="{currency}"'.encode())
    assert _findings(validator, ok, sample=sample) == []
    bad = (b'currencyID="USD"', b'currencyID="HRK"')
    assert _findings(validator, bad, sample=sample) == [("xsd-not-in-code-list", "error", "9")]


@pytest.mark.parametrize(
    ("old", "new", "box"),
    [
        (b"<fd:LoadingLocation><fd:ID>SGSIN", b"<fd:LoadingLocation><fd:ID>MYPKG", "3"),
        (b"<fd:UnloadingLocation><fd:ID>THLCH", b"<fd:UnloadingLocation><fd:ID>SGSIN", "3"),
        (b"<fd:IssueLocationID>SGSIN", b"<fd:IssueLocationID>THBKK", "12"),
    ],
)
def test_port_outside_its_boxs_country_is_a_warning(
    validator: Validator, old: bytes, new: bytes, box: str
) -> None:
    """A loading port outside the exporting country (and so on) is a warning in its box."""
    assert _findings(validator, (old, new)) == [("unlocode-country-mismatch", "warning", box)]


def test_unknown_locode_is_a_warning_only_for_countries_held() -> None:
    """SGXYZ is unknown (warning); a Chinese code is not judged (no list held for CN)."""
    validator = Validator.load(XSD_DIR)
    unknown = (b"<fd:LoadingLocation><fd:ID>SGSIN", b"<fd:LoadingLocation><fd:ID>SGXYZ")
    assert _findings(validator, unknown) == [("unlocode-unknown", "warning", "3")]
    assert "SGXYZ" not in code_lists.locations()
    assert "CN" not in code_lists.locode_countries()


def test_port_warnings_wait_for_the_country_errors(validator: Validator) -> None:
    """With the importing country wrong, only the country rule speaks, not the port."""
    edit = (
        b"<fd:CountryCode>TH</fd:CountryCode></fd:Destination>",
        b"<fd:CountryCode>VN</fd:CountryCode></fd:Destination>",
    )
    codes = [code for code, _, _ in _findings(validator, edit)]
    assert codes == ["import-country-not-receiver"]


# --- class 3: HS codes exist --------------------------------------------------------------


@pytest.mark.parametrize("hs", ["848210", "8482.10", "84821000", "8482.10.00", "8482100010"])
def test_hs_code_forms_whose_subheading_exists_pass(validator: Validator, hs: str) -> None:
    """HS, AHTN and national codes, dotted or not, pass when 8482.10 exists."""
    assert _findings(validator, (b"<fd:ID>84821000<", f"<fd:ID>{hs}<".encode())) == []


@pytest.mark.parametrize(
    ("hs", "level"),
    [("77010000", "chapter 77"), ("8499.10", "heading 8499"), ("8471.99.00", "subheading 847199")],
)
def test_hs_code_that_does_not_exist_is_an_error_naming_the_level(
    validator: Validator, hs: str, level: str
) -> None:
    """A non-existent chapter, heading or subheading is a Box 7 error saying which."""
    data = SAMPLE_FORMD.read_bytes().replace(b"<fd:ID>84821000<", f"<fd:ID>{hs}<".encode(), 1)
    report = validator.check(parse(data), now=NOW)
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.box) == ("hs-code-unknown", "error", "7")
    assert f"{level} does not exist" in finding.message
    assert "HS 2022" in finding.message and "goods item 1" in finding.message


def test_spaced_hs_code_is_refused_by_the_schema(validator: Validator) -> None:
    """'8482 10' is not normalised: the Form D schema allows digits and dots only."""
    edit = (b"<fd:ID>84821000<", b"<fd:ID>8482 10<")
    assert _findings(validator, edit) == [("xsd-invalid-value", "error", "7")]


def test_acdd_hs_code_is_checked_too(validator: Validator) -> None:
    """The ACDD's field h is checked against HS 2022 as well, without a box."""
    data = ACDD.read_bytes()
    hs = etree.fromstring(data).findtext(".//{*}Classification/{*}ID")
    assert hs
    edit = (f"<ac:ID>{hs}<".encode(), b"<ac:ID>77010000<")
    assert _findings(validator, edit, sample=ACDD) == [("hs-code-unknown", "error", None)]


def test_retired_unit_is_found_in_a_certificate_of_a_thousand_items(validator: Validator) -> None:
    """The 1 MB Form D (1,060 items, the other unit pass) reports its one retired unit."""
    large = SAMPLES / "formd" / "valid" / "sg-vn-large-1mb.xml"
    data = large.read_bytes()
    at = data.rindex(b'unitCode="H87"')
    data = data[:at] + b'unitCode="NPR"' + data[at + len(b'unitCode="H87"') :]
    report = validator.check(parse(data), now=NOW)
    assert [(f.code, f.severity) for f in report.findings] == [("unit-code-retired", "warning")]
    seq = data[:at].rsplit(b"<fd:SequenceNumeric>", 1)[1].split(b"<", 1)[0].decode()
    assert int(seq) > 1000
    assert report.findings[0].message.startswith(f"Box 9, goods item {seq}: the unit 'NPR'")
