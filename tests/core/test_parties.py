"""Parties as data: the Member States and who exchanges which document, with dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.core.envelope import MEMBER_STATES, DocumentType
from gateway.core.parties import PartiesError, default_parties, load_parties, parse_parties
from gateway.errors import SettingsError
from tests.conftest import PILOT_PARTIES

TEN = list(MEMBER_STATES)
DAY = date(2026, 12, 1)


def test_default_plan_keeps_every_type_between_the_ten() -> None:
    """Out of the box every document type goes between any two of the ten, as before."""
    plan = default_parties()
    for doc in DocumentType:
        for sender in TEN:
            for receiver in TEN:
                if sender != receiver:
                    assert plan.takes(sender, receiver, doc, "1", DAY), (doc, sender, receiver)


def test_timor_leste_is_a_member_but_exchanges_nothing_by_default() -> None:
    """TL is the eleventh member (October 2025); no exchange is enabled for it."""
    plan = default_parties()
    assert plan.members["TL"].member_since == date(2025, 10, 26)
    refusal = plan.refusal("SG", "TL", DocumentType.FORM_D, "1", DAY)
    assert refusal is not None and "Timor-Leste (TL) does not take the e-Form D" in refusal
    assert not plan.takes("TL", "SG", DocumentType.ACDD, "1", DAY)


def test_acdd_only_between_listed_pairs() -> None:
    """An exchange by pairs enables exactly those pairs, in both directions."""
    plan = parse_parties(PILOT_PARTIES)
    assert plan.takes("KH", "SG", DocumentType.ACDD, "1", DAY)
    assert plan.takes("SG", "KH", DocumentType.ACDD, "1", DAY)
    refusal = plan.refusal("SG", "TH", DocumentType.ACDD, "1", DAY)
    assert refusal is not None and "Thailand (TH) does not take the ACDD from SG" in refusal
    assert plan.takes("SG", "TH", DocumentType.FORM_D, "1", DAY)


def test_dates_bound_an_exchange() -> None:
    """An exchange applies from its since date up to its until date, inclusive."""
    plan = parse_parties(PILOT_PARTIES)
    assert not plan.takes("KH", "SG", DocumentType.ACDD, "1", date(2020, 12, 30))
    assert plan.takes("KH", "SG", DocumentType.ACDD, "1", date(2020, 12, 31))
    assert not plan.takes("SG", "TL", DocumentType.FORM_D, "1", date(2026, 12, 31))
    assert plan.takes("SG", "TL", DocumentType.FORM_D, "1", date(2027, 12, 31))
    assert not plan.takes("SG", "TL", DocumentType.FORM_D, "1", date(2028, 1, 1))


def test_an_unsupported_version_is_named() -> None:
    """A receiver that takes the type but not the version says which it takes."""
    refusal = parse_parties(PILOT_PARTIES).refusal("SG", "TH", DocumentType.FORM_D, "2", DAY)
    assert (
        refusal == "Thailand does not take version 2 of the e-Form D from SG (it takes version 1)."
    )


def test_a_country_outside_the_plan_is_refused() -> None:
    """A sender or receiver that is no member of the plan is refused."""
    refusal = parse_parties(PILOT_PARTIES).refusal("SG", "CN", DocumentType.FORM_D, "1", DAY)
    assert refusal == "CN is not an ASEAN Member State in the gateway's parties plan."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[exchange]]\ndocument = 'XYZ'\nsince = 2020-01-01", "document must be one of"),
        (
            "[[member]]\ncountry='SG'\nmember_since=1967-08-08\n"
            "[[exchange]]\ndocument='EFD'\nsince=2020-01-01\nmembers=['SG','XX']",
            "XX not listed as [[member]]",
        ),
        ("[[member]]\ncountry='SG'\nmember_since='1967'", "a TOML date"),
        (
            "[[member]]\ncountry='SG'\nmember_since=1967-08-08\n"
            "[[exchange]]\ndocument='EFD'\nsince=2020-01-01\npairs=[['SG','SG']]",
            "two different countries",
        ),
        ("version = ", "not valid TOML"),
    ],
)
def test_a_malformed_plan_says_where(text: str, message: str) -> None:
    """Unknown types, unlisted countries, bad dates and bad pairs are refused with a reason."""
    with pytest.raises(PartiesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_parties(text)


def test_plan_file_from_the_settings_or_the_shipped_one(tmp_path: Path) -> None:
    """documents.parties_file names a plan, "" the shipped one; a bad file is settings-invalid."""
    assert load_parties("") is default_parties()
    plan = tmp_path / "parties.toml"
    plan.write_text(PILOT_PARTIES, encoding="utf-8")
    assert load_parties(str(plan)).version == "test-1"
    with pytest.raises(SettingsError, match=r"documents\.parties_file"):
        load_parties(str(tmp_path / "missing.toml"))
    plan.write_text("[[exchange]]\ndocument = 'XYZ'\nsince = 2020-01-01\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="document must be one of"):
        load_parties(str(plan))
