"""The ASEAN AEO MRA plan as configuration (setting documents.mra_file): read once at start and
used by the AEO rules instead of the shipped gateway/data/aeo.toml."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core.aeo import load_mra
from gateway.core.parsing import parse
from gateway.core.validation import Validator
from gateway.errors import SettingsError
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
XSD_DIR = ROOT / "xsd"
SNAPSHOT = ROOT / "samples" / "aeo-status" / "valid" / "sg-my-snapshot.xml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

# MY has not joined yet; SG allots ids of another shape.
OTHER_PLAN = """
version = "test"

[[participant]]
country = "SG"
since = 2024-08-01
pattern = "SG-AEO-[0-9]{4}"

[[participant]]
country = "MY"
since = 2027-01-01
"""


def _codes(validator: Validator) -> list[str]:
    report = validator.check(parse(SNAPSHOT.read_bytes()), now=NOW)
    assert report.schema_valid, report.schema_findings
    return sorted({f.code for f in report.findings})


def test_the_shipped_plan_passes_the_snapshot_a_configured_one_does_not(tmp_path: Path) -> None:
    """SG's snapshot to MY is clean under the shipped plan; under a configured plan where MY
    joins only in 2027 and SG's ids differ, the same document breaks both rules."""
    plan_file = tmp_path / "aeo.toml"
    plan_file.write_text(OTHER_PLAN, encoding="utf-8")
    assert _codes(Validator.load(XSD_DIR)) == []
    configured = Validator.load(XSD_DIR, mra=load_mra(str(plan_file)))
    assert _codes(configured) == ["aeo-notification-id-format", "aeo-receiver-not-mra-partner"]


def test_the_setting_names_the_file_and_a_bad_file_is_a_settings_error(tmp_path: Path) -> None:
    """ASW_DOCUMENTS__MRA_FILE is read as documents.mra_file; an unreadable plan is named."""
    settings = load_settings(None, {"ASW_DOCUMENTS__MRA_FILE": str(tmp_path / "m.toml")})
    assert settings.documents.mra_file == str(tmp_path / "m.toml")
    assert load_settings(None, {}).documents.mra_file == ""
    with pytest.raises(SettingsError, match=r"documents\.mra_file"):
        load_mra(str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[[participant]]\ncountry = "SG"\nsince = 2024-08-01\npattern = "("\n', encoding="utf-8"
    )
    with pytest.raises(SettingsError, match=r"documents\.mra_file"):
        load_mra(str(broken))
