"""Every sample in samples/manifest.json gets exactly its expected verdict and codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.envelope import read_envelope
from gateway.core.parsing import parse
from gateway.core.rule_catalogue import CATALOGUE
from gateway.core.schemas import XSD_CODES
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"
SAMPLE_FORMD = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"

MANIFEST: list[dict[str, Any]] = json.loads((SAMPLES / "manifest.json").read_text())


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


def test_manifest_lists_every_sample_file() -> None:
    """No sample XML is missing from the manifest, and no entry points nowhere."""
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.glob("*/*/*.xml")}
    assert on_disk == {entry["file"] for entry in MANIFEST}


def test_manifest_covers_every_rule_and_xsd_code() -> None:
    """Each business rule and each main XSD code has at least one sample."""
    expected = {code for entry in MANIFEST for code in entry["codes"]}
    assert set(CATALOGUE) <= expected
    assert set(XSD_CODES) - {"xsd-invalid", "xsd-unexpected-attribute"} <= expected


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_sample_gets_its_expected_outcome(validator: Validator, entry: dict[str, Any]) -> None:
    """The validator's verdict and finding codes match the manifest (as of the real now)."""
    report = validator.check(parse((SAMPLES / entry["file"]).read_bytes()), now=datetime.now(UTC))
    assert sorted({f.code for f in report.findings}) == entry["codes"]
    assert report.valid is entry["valid"]


def test_basic_sample_keeps_its_contract() -> None:
    """sg-th-basic is a ~5 KB SG to TH Form D with the agreed message id."""
    data = SAMPLE_FORMD.read_bytes()
    assert 4_500 <= len(data) <= 6_000
    envelope = read_envelope(parse(data))
    assert (envelope.sender.country, envelope.receiver.country) == ("SG", "TH")
    assert envelope.message_id == "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"


def test_large_sample_is_about_1_mb_with_hundreds_of_items() -> None:
    """The large Form D is roughly 1 MB and has hundreds of goods items."""
    data = (SAMPLES / "formd/valid/sg-vn-large-1mb.xml").read_bytes()
    assert 900_000 <= len(data) <= 1_200_000
    assert data.count(b"<fd:GovernmentAgencyGoodsItem>") >= 500
