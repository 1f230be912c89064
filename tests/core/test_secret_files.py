"""Secrets from files: ``ASW_<KEY>_FILE`` gives the value of ``ASW_<KEY>`` (container secrets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import load_settings

DEFAULT = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"


def test_urls_and_api_keys_come_from_files(tmp_path: Path) -> None:
    """The AMQP URL, the journal URL and a party's API key digest are read from their files."""
    amqp = tmp_path / "amqp_url"
    amqp.write_text("amqp://asw:s3cret@rabbit-1:5672/asw\n")
    journal = tmp_path / "journal_url"
    journal.write_text("postgresql://asw:pw@db:5432/asw\n")
    digest = hashlib.sha256(b"sg-key").hexdigest()
    key = tmp_path / "sg_key"
    key.write_text(digest + "\n")
    settings = load_settings(
        DEFAULT,
        {
            "ASW_AMQP__URL_FILE": str(amqp),
            "ASW_JOURNAL__URL_FILE": str(journal),
            "ASW_PARTIES__SG__API_KEY_SHA256_FILE": str(key),
        },
    )
    assert settings.amqp.url == "amqp://asw:s3cret@rabbit-1:5672/asw"
    assert settings.journal.url == "postgresql://asw:pw@db:5432/asw"
    assert settings.parties["SG"].api_key_sha256 == (digest,)


def test_a_setting_named_file_is_still_that_setting(tmp_path: Path) -> None:
    """ASW_DOCUMENTS__PARTIES_FILE is the setting documents.parties_file, not a secret file."""
    settings = load_settings(DEFAULT, {"ASW_DOCUMENTS__PARTIES_FILE": str(tmp_path / "p.toml")})
    assert settings.documents.parties_file == str(tmp_path / "p.toml")


def test_missing_file_and_value_given_twice_are_named(tmp_path: Path) -> None:
    """An unreadable secret file, and a value given both ways, are each reported by name."""
    given = tmp_path / "journal_url"
    given.write_text("sqlite:var/j.db")
    with pytest.raises(SettingsError) as raised:
        load_settings(
            DEFAULT,
            {
                "ASW_AMQP__URL_FILE": str(tmp_path / "absent"),
                "ASW_JOURNAL__URL_FILE": str(given),
                "ASW_JOURNAL__URL": "sqlite:var/other.db",
            },
        )
    problems = raised.value.problems
    assert any(
        p.startswith(f"ASW_AMQP__URL_FILE: cannot read the secret file {tmp_path / 'absent'}")
        for p in problems
    ), problems
    assert any(
        p.startswith("ASW_JOURNAL__URL_FILE: ASW_JOURNAL__URL is set as well") for p in problems
    )
