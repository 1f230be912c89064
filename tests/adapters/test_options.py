"""Each adapter kind's options are parsed once into a typed class; bad ones name the party."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import build_adapter, parse_options
from adapters.drop_folder import DropFolderAdapter, DropFolderOptions
from adapters.pull_inbox import PullInboxAdapter, PullInboxOptions
from gateway.core.handover import Handover
from gateway.errors import SettingsError


class _Inbox:
    """An inbox store that records what it was given (stands in for no gateway code)."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    async def inbox_store(self, message_id: str, *, receiver: str, at: object) -> bool:
        self.stored.append(message_id)
        return True


def test_drop_folder_options_are_typed(tmp_path: Path) -> None:
    """directory, outbox and poll_seconds come out as paths and a number."""
    options = parse_options(
        "TH",
        "drop-folder",
        {"directory": str(tmp_path / "in"), "outbox": str(tmp_path / "out"), "poll_seconds": "2"},
    )
    assert options == DropFolderOptions(
        directory=tmp_path / "in",
        outbox=tmp_path / "out",
        poll_seconds=2.0,
        access=options.access,  # type: ignore[union-attr]
    )
    adapter = build_adapter(options, inbox=_Inbox())
    assert isinstance(adapter, DropFolderAdapter)
    assert adapter.directory == tmp_path / "in"


def test_bad_options_name_the_party_and_the_option() -> None:
    """Every problem of a party's options is reported with the party and the option named."""
    with pytest.raises(SettingsError) as caught:
        parse_options("TH", "drop-folder", {"poll_seconds": "soon", "owner": "no-such-user-asw"})
    problems = caught.value.problems
    assert len(problems) == 3
    assert all(p.startswith("parties.TH.options: drop-folder ") for p in problems)
    assert any("directory" in p for p in problems)
    assert any("poll_seconds" in p for p in problems)
    with pytest.raises(SettingsError, match=r"parties\.SG\.options: pull-inbox lease_seconds"):
        parse_options("SG", "pull-inbox", {"lease_seconds": "-1"})
    with pytest.raises(SettingsError, match=r"parties\.SG\.adapter"):
        parse_options("SG", "carrier-pigeon", {})


async def test_pull_inbox_gets_its_store_through_the_constructor() -> None:
    """The pull inbox built from checked options stores into the inbox it was given."""
    inbox = _Inbox()
    options = parse_options("TH", "pull-inbox", {"lease_seconds": "60"})
    assert isinstance(options, PullInboxOptions)
    adapter = build_adapter(options, inbox=inbox)
    assert isinstance(adapter, PullInboxAdapter)
    assert adapter.lease_seconds == 60
    await adapter.deliver(
        Handover(message_id="m-1", sender="SG", receiver="TH", document_type="EFD", payload=b"")
    )
    assert inbox.stored == ["m-1"]
