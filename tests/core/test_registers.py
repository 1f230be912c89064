"""The certified-exporter register as data: history read on a day, and the Rule 2(6) checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from gateway.core.parsing import parse
from gateway.core.registers import (
    ACTIVE,
    SUSPENDED,
    WITHDRAWN,
    ExporterRecord,
    Product,
    RegisterEntry,
    add_months,
    declaration_findings,
    read_update,
    register_on,
    standing_on,
    update_findings,
)
from gateway.core.rule_catalogue import CATALOGUE, REGISTER_RULES

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DATA = Path(__file__).resolve().parents[1] / "data" / "ce-register"


def _ce(name: str) -> Path:
    """A register update: the GRANT is a committed sample, the later updates test data."""
    sample = SAMPLES / "ce-register" / "valid" / name
    return sample if sample.exists() else DATA / name


OD = SAMPLES / "origin-declaration" / "valid" / "sg-my-orchid-foods.xml"
KEY = "SGCE000123"


def _entry(name: str, **changes: object) -> RegisterEntry:
    entry = read_update(parse(_ce(name).read_bytes()), message_id=f"m-{name}")
    return replace(entry, **changes)  # type: ignore[arg-type]


GRANT = _entry("sg-1-grant-orchid-foods.xml")
AMEND = _entry("sg-2-amend-orchid-foods.xml")
SUSPEND = _entry("sg-3-suspend-orchid-foods.xml")
WITHDRAW = _entry("sg-4-withdraw-orchid-foods.xml")


def _od(*edits: tuple[str, str]) -> bytes:
    text = OD.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


def _codes(document: bytes, history: list[RegisterEntry], today: date) -> list[str]:
    return sorted(f.code for f in declaration_findings(parse(document), history, today=today))


def test_update_documents_read_into_entries() -> None:
    """A GRANT carries the whole record; a SUSPEND only the code, its date and reason."""
    assert (GRANT.action, GRANT.country, GRANT.record_key) == ("GRANT", "SG", KEY)
    assert isinstance(GRANT.record, ExporterRecord)
    assert GRANT.record.signatories == ("Tan Mei Ling", "Rajesh Kumar")
    assert [p.code for p in GRANT.record.products] == ["180690", "19053110"]
    assert (
        SUSPEND.record is None and SUSPEND.reason and SUSPEND.effective_date == date(2026, 11, 25)
    )


def test_history_is_read_as_it_stood_on_each_day() -> None:
    """GRANT, AMEND, SUSPEND, WITHDRAW apply on their effective dates, in any recording order."""
    history = [WITHDRAW, SUSPEND, AMEND, GRANT]  # recorded late and out of order
    assert standing_on(history, KEY, date(2026, 2, 28)) is None
    granted = standing_on(history, KEY, date(2026, 3, 1))
    assert granted is not None and granted.status == ACTIVE
    assert granted.record.signatories == ("Tan Mei Ling", "Rajesh Kumar")
    amended = standing_on(history, KEY, date(2026, 9, 1))
    assert amended is not None and amended.record.signatories == ("Tan Mei Ling",)
    suspended = standing_on(history, KEY, date(2026, 11, 25))
    assert suspended is not None and suspended.status == SUSPENDED
    assert not suspended.valid_on(date(2026, 11, 25))
    withdrawn = standing_on(history, KEY, date(2026, 12, 1))
    assert withdrawn is not None and withdrawn.status == WITHDRAWN
    assert set(register_on(history, date(2026, 6, 1))) == {KEY}


def test_an_amend_lifts_a_suspension_but_not_a_withdrawal() -> None:
    """AMEND after SUSPEND makes the record active again; after WITHDRAW it changes nothing."""
    lifted = replace(AMEND, entry_id="X", effective_date=date(2026, 11, 26))
    standing = standing_on([GRANT, SUSPEND, lifted], KEY, date(2026, 11, 27))
    assert standing is not None and standing.status == ACTIVE
    late = replace(AMEND, entry_id="Y", effective_date=date(2026, 12, 5))
    standing = standing_on([GRANT, WITHDRAW, late], KEY, date(2026, 12, 6))
    assert standing is not None and standing.status == WITHDRAWN


def _update_codes(entry: RegisterEntry, history: list[RegisterEntry], name: str) -> list[str]:
    root = parse(_ce(name).read_bytes())
    return [f.code for f in update_findings(root, entry, history)]


def test_updates_are_checked_against_the_issuing_countrys_history() -> None:
    """A second GRANT, an AMEND of nothing, a SUSPEND after WITHDRAW are refused; resends pass."""
    grant, amend, suspend = (
        "sg-1-grant-orchid-foods.xml",
        "sg-2-amend-orchid-foods.xml",
        "sg-3-suspend-orchid-foods.xml",
    )
    assert _update_codes(GRANT, [], grant) == []
    assert _update_codes(replace(GRANT, entry_id="G2"), [GRANT], grant) == [
        "ce-authorisation-exists"
    ]
    assert _update_codes(GRANT, [GRANT], grant) == []  # the same update again
    assert _update_codes(AMEND, [], amend) == ["ce-authorisation-unknown"]
    assert _update_codes(AMEND, [GRANT], amend) == []
    assert _update_codes(
        SUSPEND, [GRANT, replace(WITHDRAW, effective_date=date(2026, 4, 1))], suspend
    ) == ["ce-authorisation-withdrawn"]
    regrant = replace(GRANT, entry_id="G3", effective_date=date(2026, 12, 2))
    assert _update_codes(regrant, [GRANT, WITHDRAW], grant) == []


def test_a_declaration_that_matches_the_register_has_no_findings() -> None:
    """Exporter, signatory and both products (6-digit HS covering an AHTN line) match."""
    assert _codes(OD.read_bytes(), [GRANT], date(2026, 11, 25)) == []


@pytest.mark.parametrize(
    ("edits", "history", "codes"),
    [
        ((), [], ["od-exporter-not-registered"]),
        (
            (),
            [GRANT, replace(SUSPEND, effective_date=date(2026, 11, 1))],
            ["od-authorisation-not-valid"],
        ),
        ((("2026-11-19", "2029-03-01"),), [GRANT], ["od-authorisation-not-valid"]),
        ((("Tan Mei Ling", "Somebody Else"),), [GRANT], ["od-signatory-not-registered"]),
        ((("18069010", "17049099"),), [GRANT], ["od-product-not-authorised"]),
        ((("<od:Name>Orchid", "<od:Name>Lotus"),), [GRANT], ["od-exporter-name-differs"]),
        ((("19053110", "190531"),), [GRANT], []),
        ((("19053110", "19053120"),), [GRANT], ["od-product-not-authorised"]),
    ],
)
def test_each_element_is_checked_against_the_register(
    edits: tuple[tuple[str, str], ...], history: list[RegisterEntry], codes: list[str]
) -> None:
    """Each failing element gives its own finding, read on the declaration date."""
    assert _codes(_od(*edits), history, date(2026, 11, 25)) == codes


def test_import_after_twelve_months_is_a_warning_only() -> None:
    """Rule 14: the day after the 12 months is flagged as a warning, the last day is not."""
    document = OD.read_bytes()
    assert _codes(document, [GRANT], date(2027, 11, 19)) == []
    found = declaration_findings(parse(document), [GRANT], today=date(2027, 11, 20))
    assert [(f.code, f.severity) for f in found] == [("od-imported-after-12-months", "warning")]


def test_months_are_calendar_months() -> None:
    """31 January plus one month is the end of February; a leap day falls back to the 28th."""
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert add_months(date(2026, 11, 19), 12) == date(2027, 11, 19)


def test_a_product_authorisation_covers_its_lines() -> None:
    """An HS6 authorisation covers every AHTN line under it, an AHTN one only its own line."""
    assert Product(code="180690", description="").covers("18069010")
    assert not Product(code="18069010", description="").covers("18069090")
    assert not Product(code="180690", description="").covers("180610")


def test_register_rules_have_stable_codes_apart_from_the_document_rules() -> None:
    """The history rules have kebab-case codes and are not run by the document validator."""
    assert set(REGISTER_RULES).isdisjoint(CATALOGUE)
    for code, rule in REGISTER_RULES.items():
        assert code == rule.code == code.lower()
        assert rule.severity in {"error", "warning"}
