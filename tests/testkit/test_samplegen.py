"""The sample generator makes valid, reproducible documents, and breaks exactly the rule asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asw_toolkit.samplegen import generate, invalid_rules
from gateway.core.parsing import parse
from gateway.core.validation import Validator
from tests.testkit.conftest import cli

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"
NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


@pytest.mark.parametrize("kind", ["formd", "acdd"])
def test_generated_documents_are_valid_without_findings(validator: Validator, kind: str) -> None:
    """Forty generated documents of each type pass the XSD and every rule with no finding."""
    for doc in generate(kind, count=40, items=5, seed=11, now=NOW):
        report = validator.check(parse(doc.data), now=NOW)
        assert report.findings == (), (doc.name, [f.message for f in report.findings])


@pytest.mark.parametrize(
    ("kind", "rule"),
    [(kind, rule) for kind in ("formd", "acdd") for rule in invalid_rules(kind)],
)
def test_invalid_rule_breaks_exactly_that_rule(validator: Validator, kind: str, rule: str) -> None:
    """--invalid RULE gives documents whose findings are exactly the declared codes."""
    for doc in generate(kind, count=4, items=2, seed=5, invalid=rule, now=NOW):
        report = validator.check(parse(doc.data), now=NOW)
        assert tuple(sorted({f.code for f in report.findings})) == doc.codes
        assert rule in doc.codes
        assert report.valid is doc.valid


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    """The generator is reproducible for a seed, and a new seed gives new documents."""
    first = [d.data for d in generate("formd", count=5, seed=3, now=NOW)]
    again = [d.data for d in generate("formd", count=5, seed=3, now=NOW)]
    other = [d.data for d in generate("formd", count=5, seed=4, now=NOW)]
    assert first == again
    assert first != other


def test_samples_generate_writes_documents_and_manifest(tmp_path: Path) -> None:
    """`samples generate` writes N files and a manifest saying what to expect of each."""
    out = tmp_path / "out"
    assert cli("samples", "generate", "--type", "acdd", "--count", "3", "--seed", "2",
               "--date", "2026-11-22", str(out)) == 0  # fmt: skip
    assert cli("samples", "generate", "--type", "formd", "--count", "2", "--items", "4",
               "--invalid", "hs-code-length", "--date", "2026-11-22", str(out)) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest) == 5
    assert sorted(p.name for p in out.glob("*.xml")) == [e["file"] for e in manifest]
    broken = [e for e in manifest if not e["valid"]]
    assert [e["codes"] for e in broken] == [["hs-code-length"], ["hs-code-length"]]
