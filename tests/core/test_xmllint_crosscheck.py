"""The XSD part of our verdict agrees with xmllint --schema on every sample."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.parsing import parse
from gateway.core.schemas import SCHEMA_FILES
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"

MANIFEST: list[dict[str, Any]] = json.loads((SAMPLES / "manifest.json").read_text())
XMLLINT = shutil.which("xmllint")
NOW = datetime(2026, 12, 1, tzinfo=UTC)

pytestmark = pytest.mark.skipif(XMLLINT is None, reason="xmllint (libxml2-utils) not installed")


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_schema_verdict_matches_xmllint(validator: Validator, entry: dict[str, Any]) -> None:
    """xmllint accepts the sample exactly when our XSD stage does."""
    path = SAMPLES / entry["file"]
    report = validator.check(parse(path.read_bytes()), now=NOW)
    schema = XSD_DIR / SCHEMA_FILES[report.document_type]
    assert XMLLINT is not None
    result = subprocess.run(
        [XMLLINT, "--noout", "--nonet", "--schema", str(schema), str(path)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode in {0, 3}, result.stderr  # 3: the document does not validate
    assert (result.returncode == 0) is report.schema_valid, result.stderr
