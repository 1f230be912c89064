"""Each adapter kind's options are parsed once into a typed class; bad ones name the party."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import build_adapter, parse_options
from adapters.drop_folder import DropFolderAdapter, DropFolderOptions
from adapters.pull_inbox import PullInboxAdapter, PullInboxOptions
from gateway.core.handover import Handover
from gateway.errors import SettingsError
from gateway.journal import inbox_of, open_journal
from tests.journal.conftest import at, make_record


async def test_drop_folder_options_are_typed(tmp_path: Path) -> None:
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
    journal = await open_journal(f"sqlite://{tmp_path / 'journal.db'}")
    try:
        adapter = build_adapter(options, inbox=inbox_of(journal))
    finally:
        await journal.close()
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


async def test_pull_inbox_gets_its_store_through_the_constructor(tmp_path: Path) -> None:
    """The pull inbox built from checked options stores into the journal it was given."""
    journal = await open_journal(f"sqlite://{tmp_path / 'journal.db'}")
    try:
        record = make_record(b"<EFormD/>")
        await journal.record_accepted(record, b"<EFormD/>", at=at(1))
        options = parse_options("TH", "pull-inbox", {"lease_seconds": "60"})
        assert isinstance(options, PullInboxOptions)
        adapter = build_adapter(options, inbox=inbox_of(journal))
        assert isinstance(adapter, PullInboxAdapter)
        assert adapter.lease_seconds == 60
        await adapter.deliver(
            Handover(
                message_id=record.message_id,
                sender=record.sender,
                receiver=record.receiver,
                document_type="EFD",
                payload=b"<EFormD/>",
            )
        )
        [waiting] = await inbox_of(journal).inbox_waiting(record.receiver, at=at(20))
        assert waiting.message_id == record.message_id
    finally:
        await journal.close()
