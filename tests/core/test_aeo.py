"""AEO registers and the MRA plan as data: snapshots, deltas, id patterns, participation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from gateway.core.aeo import (
    SNAPSHOT_MARKER,
    acdd_aeo_findings,
    aeo_on,
    default_mra,
    parse_mra,
    read_notification,
)
from gateway.core.parsing import parse
from gateway.core.registers import RegisterEntry

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SNAPSHOT = SAMPLES / "aeo-status" / "valid" / "sg-my-snapshot.xml"
DELTA = SAMPLES / "aeo-status" / "valid" / "sg-my-delta-suspension.xml"
ACDD = Path(__file__).resolve().parents[1] / "data" / "acdd-sg-my-aeo.xml"
ONE, TWO = "AEOSG2024STP00001", "AEOSG2025STP00042"


def _entries(path: Path) -> list[RegisterEntry]:
    return read_notification(parse(path.read_bytes()), message_id=path.stem)


def test_a_snapshot_is_a_marker_and_one_entry_per_aeo() -> None:
    """SNAPSHOT gives the '*' marker first, then each AEO; DELTA only the AEOs it lists."""
    snapshot = _entries(SNAPSHOT)
    assert [e.record_key for e in snapshot] == [SNAPSHOT_MARKER, ONE, TWO]
    assert [e.record_key for e in _entries(DELTA)] == [ONE]


def test_deltas_apply_after_snapshots_and_a_later_snapshot_removes_the_unlisted() -> None:
    """The last word on a day wins; a snapshot without an id takes it out of the register."""
    history = _entries(SNAPSHOT) + _entries(DELTA)
    before = aeo_on(history, ONE, date(2026, 9, 30))
    assert before is not None and before.valid_on(date(2026, 9, 30))
    after = aeo_on(history, ONE, date(2026, 10, 1))
    assert after is not None and after.status == "SUSPENDED"
    assert aeo_on(history, ONE, date(2026, 8, 31)) is None
    later = [
        replace(e, entry_id="S2", effective_date=date(2026, 11, 1))
        for e in _entries(SNAPSHOT)
        if e.record_key != TWO
    ]
    assert aeo_on(history + later, TWO, date(2026, 11, 1)) is None
    restored = aeo_on(history + later, ONE, date(2026, 11, 1))
    assert restored is not None and restored.status == "VALID"


def test_the_mra_plan_holds_participants_and_patterns() -> None:
    """SG, MY, BN from 1 Aug 2024 with their id formats; VN not yet; others accept any id."""
    plan = default_mra()
    assert plan.takes_part("SG", date(2024, 8, 1)) and not plan.takes_part("SG", date(2024, 7, 31))
    assert not plan.takes_part("VN", date(2026, 12, 1))
    assert plan.id_matches("SG", ONE) and not plan.id_matches("SG", "AEOSG123")
    assert plan.id_matches("BN", "SLMSBN-ABC123-XYZ") and plan.id_matches("BN", "SLMSBNABC123XYZ")
    assert plan.id_matches("TH", "anything")
    custom = parse_mra('[[participant]]\ncountry = "VN"\nsince = 2027-01-01\npattern = "VN[0-9]+"')
    assert custom.takes_part("VN", date(2027, 1, 1)) and not custom.id_matches("VN", "X1")


def test_acdd_aeo_ids_against_the_register_are_warnings() -> None:
    """A suspended AEO and an unknown one are warnings naming the reason; none is an error."""
    root = parse(ACDD.read_bytes())
    found = acdd_aeo_findings(
        root, {"SG": _entries(SNAPSHOT) + _entries(DELTA), "MY": []}, default_mra()
    )
    assert sorted(f.code for f in found) == ["aeo-not-found", "aeo-not-valid"]
    assert {f.severity for f in found} == {"warning"}
    assert acdd_aeo_findings(root, {"SG": _entries(SNAPSHOT)}, default_mra())[0].code == (
        "aeo-not-found"
    )
