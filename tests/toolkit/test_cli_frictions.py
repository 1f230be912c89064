"""The tester CLI frictions of issue 16 §11, each against the real command (and gateway)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from asw_toolkit.cli import build_parser as toolkit_parser
from asw_toolkit.cli import main as toolkit_main
from asw_toolkit.cli.replay import ReplayOptions, replay
from asw_toolkit.processes import free_port
from gateway.app import Gateway
from gateway.cli import build_parser as gateway_parser
from gateway.cli import main as gateway_main
from gateway.cli.validate import EX_NOINPUT
from tests.federation.harness import KEYS, hub_settings, running
from tests.integration.helpers import base_url
from tests.pki_fixtures import PkiBundle

UUID_LINE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "samples" / "formd" / "valid"
SG_DOC = VALID / "sg-th-basic.xml"
MY_DOC = VALID / "my-kh-rvc-fob.xml"
HS_BAD = ROOT / "samples" / "formd" / "invalid" / "hs-code-length.xml"


def _subcommands(parser: Any) -> dict[str, Any]:
    return dict(parser._subparsers._group_actions[0].choices)


def test_help_texts_carry_no_raw_markup() -> None:
    """No ``--help`` of asw-toolkit or asw-gateway shows reStructuredText double backticks."""
    for parser in (toolkit_parser(), gateway_parser()):
        for name, sub in _subcommands(parser).items():
            text = sub.format_help()
            assert "``" not in text, f"{parser.prog} {name} --help shows raw markup"


def test_validate_takes_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder means its *.xml files: all valid exits 0; one invalid among them exits 1."""
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(SG_DOC, folder / "a.xml")
    shutil.copy(MY_DOC, folder / "nested" / "b.xml")
    assert gateway_main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "a.xml: valid" in out and "b.xml: valid" in out
    shutil.copy(HS_BAD, folder / "c.xml")
    assert gateway_main(["validate", str(folder)]) == 1


def test_validate_missing_file_exits_differently_from_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that does not exist exits 66 (EX_NOINPUT) and says so; an invalid file exits 1."""
    assert gateway_main(["validate", str(HS_BAD)]) == 1
    assert gateway_main(["validate", str(SG_DOC), str(tmp_path / "nope.xml")]) == EX_NOINPUT
    assert "no such file or folder" in capsys.readouterr().err
    assert EX_NOINPUT not in (0, 1, 2)


def test_api_keys_file_is_read_and_checked(tmp_path: Path) -> None:
    """CC=key per line, comments allowed; a malformed line is refused with its number."""
    from asw_toolkit.cli.send import ApiKeyError, api_keys_from

    good = tmp_path / "keys"
    good.write_text("# hub keys\nSG = k-sg\nmy=k-my\n")
    args: Any = type("Args", (), {"api_keys": good})()
    assert api_keys_from(args, {}) == {"SG": "k-sg", "MY": "k-my"}
    args.api_keys = None
    assert api_keys_from(args, {"ASW_API_KEYS_FILE": str(good)})["MY"] == "k-my"
    assert api_keys_from(args, {}) == {}
    bad = tmp_path / "bad"
    bad.write_text("SG k-sg\n")
    args.api_keys = bad
    with pytest.raises(ApiKeyError, match="line 1"):
        api_keys_from(args, {})


def test_replay_stops_early_when_the_gateway_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against a port nobody listens on, 200 messages stop after a few tries, exit 75."""
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code = toolkit_main(
        ["replay", str(SG_DOC), "--url", url, "--count", "200", "--concurrency", "1"]
    )
    assert code == 75
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "stopped early" in err and "did not answer" in err


@pytest.mark.rabbitmq
async def test_send_new_id_prints_the_id_even_when_refused(
    running_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid document sent with --new-id: the fresh id is on stdout, the refusal on stderr."""
    url = base_url(running_gateway)
    code = await asyncio.to_thread(toolkit_main, ["send", str(HS_BAD), "--url", url, "--new-id"])
    assert code == 1
    captured = capsys.readouterr()
    printed = [line for line in captured.out.splitlines() if UUID_LINE.fullmatch(line)]
    assert len(printed) == 1, captured.out  # the gateway's own log lines go there too
    assert str(uuid.UUID(printed[0])) == printed[0]
    assert "refused (422" in captured.err


@pytest.mark.rabbitmq
async def test_replay_sends_each_document_with_its_senders_key(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> None:
    """A hub with per-party keys: one key per sender is accepted; one key for all is refused."""
    settings = hub_settings(tmp_path, amqp_url, rsa_pki.directory, http={"auth": "api-key"})
    async with running(settings) as gateway:
        options = ReplayOptions(
            url=base_url(gateway),
            files=(SG_DOC, MY_DOC),
            api_keys={"SG": KEYS["SG"], "MY": KEYS["MY"]},
            delivery_timeout=0,
            show_progress=False,
        )
        result = await replay(options)
        assert [o.status for o in result.outcomes] == [202, 202]
        one_key = ReplayOptions(
            url=base_url(gateway),
            files=(SG_DOC, MY_DOC),
            api_key=KEYS["SG"],
            delivery_timeout=0,
            show_progress=False,
        )
        result = await replay(one_key)
        assert [(o.status, o.code) for o in result.outcomes] == [
            (202, "accepted"),
            (403, "sender-not-allowed"),
        ]
