"""Loading the settings tree from TOML and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "config" / "gateway.toml"


def test_committed_defaults_load_with_ten_parties() -> None:
    """config/gateway.toml loads and configures all ten member states."""
    settings = load_settings(DEFAULT, {})
    assert sorted(settings.parties) == sorted(
        ["BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN"]
    )
    assert settings.http.port == 8080


def test_environment_overrides_nested_keys() -> None:
    """ASW_HTTP__PORT and a party option can be overridden from the environment."""
    settings = load_settings(
        DEFAULT,
        {"ASW_HTTP__PORT": "9100", "ASW_PARTIES__TH__OPTIONS__DIRECTORY": "/srv/th", "HOME": "/"},
    )
    assert settings.http.port == 9100
    assert settings.parties["TH"].options["directory"] == "/srv/th"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """A bad configuration raises one error listing all of its problems."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[http]\nport = "eighty"\n[log]\nlevel = "loud"\n[parties.XX]\nadapter = "drop-folder"\n'
        '[parties.TH]\nadapter = "carrier-pigeon"\n[mystery]\n',
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(
            config,
            {
                "ASW_AMQP__PREFETCH": "-1",
                "ASW_NODE__PIN_CPUS": "sometimes",
                "ASW_NODE__SCHEDULER": "fifo",
            },
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "http.port",
        "log.level",
        "parties.XX",
        "parties.TH.adapter",
        "[mystery]",
        "amqp.prefetch",
        "node.pin_cpus",
        "node.scheduler",
    ):
        assert expected in problems
    assert len(caught.value.problems) == 8


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    """A configuration path that does not exist is reported, not a traceback."""
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_retry_schedule_from_toml_and_environment(tmp_path: Path) -> None:
    """The retry schedule is a list in TOML and comma-separated in the environment."""
    config = tmp_path / "c.toml"
    config.write_text("[amqp]\nretry_schedule_seconds = [1, 2.5]\n", encoding="utf-8")
    assert load_settings(config, {}).amqp.retry_schedule_seconds == (1.0, 2.5)
    overridden = load_settings(config, {"ASW_AMQP__RETRY_SCHEDULE_SECONDS": "5,30,120"})
    assert overridden.amqp.retry_schedule_seconds == (5.0, 30.0, 120.0)
    config.write_text('[amqp]\nretry_schedule_seconds = ["soon"]\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="retry_schedule_seconds"):
        load_settings(config, {})


def test_amqp_urls_list_from_toml_and_environment(tmp_path: Path) -> None:
    """amqp.urls takes every cluster node's address from TOML or a comma-separated variable."""
    config = tmp_path / "gateway.toml"
    config.write_text('[amqp]\nurls = ["amqp://a:5672/", "amqp://b:5672/"]\n', encoding="utf-8")
    assert load_settings(config, {}).amqp.urls == ("amqp://a:5672/", "amqp://b:5672/")
    overridden = load_settings(config, {"ASW_AMQP__URLS": "amqp://c/, amqp://d/,"})
    assert overridden.amqp.urls == ("amqp://c/", "amqp://d/")
    assert load_settings(None, {}).amqp.urls == ()
    config.write_text("[amqp]\nurls = [5672]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"amqp\.urls"):
        load_settings(config, {})


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ({"ASW_NODE__PIN_CPUS": "sometimes"}, "node.pin_cpus", "auto, on, off"),
        ({"ASW_NODE__SCHEDULER": "fifo"}, "node.scheduler", "batch, normal"),
        ({"ASW_HTTP__AUTH": "password"}, "http.auth", "api-key, tls, api-key-or-tls, none"),
        ({"ASW_LOG__LEVEL": "loud"}, "log.level", "debug, info, warning, error"),
        ({"ASW_LOG__FORMAT": "xml"}, "log.format", "auto, json, console"),
        (
            {"ASW_PARTIES__TH__ADAPTER": "carrier-pigeon"},
            "parties.TH.adapter",
            "drop-folder, http-push, pull-inbox, remote-gateway",
        ),
        (
            {"ASW_PARTIES__TH__REVOCATION": "ignore"},
            "parties.TH.revocation",
            "hard-fail, soft-fail",
        ),
    ],
)
def test_a_choice_outside_its_allowed_values_names_key_and_choices(
    override: dict[str, str], key: str, allowed: str
) -> None:
    """A choice setting with an unknown value is refused, naming the key and the allowed values."""
    with pytest.raises(SettingsError) as caught:
        load_settings(DEFAULT, override)
    assert list(caught.value.problems) == [
        f"{key}: must be one of {allowed}; got {next(iter(override.values()))!r}"
    ]


def test_builtin_defaults_hold_without_a_configuration_file() -> None:
    """With no file, every setting takes its one built-in default from the settings classes."""
    settings = load_settings(None, {})
    assert settings.node.workers == 1
    assert settings.node.pin_cpus == "auto"
    assert settings.http.auth == "api-key"
    assert settings.parties == {}


def test_retention_below_three_years_needs_the_explicit_override(tmp_path: Path) -> None:
    """retention_days = 30 stops start-up unless journal.allow_short_retention is set."""
    config = tmp_path / "gateway.toml"
    config.write_text("[journal]\nretention_days = 30\n")
    with pytest.raises(SettingsError, match="allow_short_retention"):
        load_settings(config, {})
    allowed = load_settings(config, {"ASW_JOURNAL__ALLOW_SHORT_RETENTION": "true"})
    assert allowed.journal.retention_days == 30
    assert load_settings(None, {}).journal.retention_days == 1100
