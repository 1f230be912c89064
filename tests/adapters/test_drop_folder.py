"""The drop-folder adapter against a real folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.drop_folder import DropFolderAdapter
from gateway.core.handover import Handover
from gateway.errors import PeerUnavailable, PermanentDeliveryFailure

MESSAGE_ID = "0b1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"


def _handover(payload: bytes = b"<doc/>", message_id: str = MESSAGE_ID) -> Handover:
    return Handover(
        message_id=message_id, sender="SG", receiver="TH", document_type="EFD", payload=payload
    )


async def test_delivers_the_document_under_its_message_id(tmp_path: Path) -> None:
    """The payload lands as <message-id>.xml with no temporary file left behind."""
    adapter = DropFolderAdapter(tmp_path / "inbox")
    await adapter.deliver(_handover(b"<doc>1</doc>"))
    assert (tmp_path / "inbox" / f"{MESSAGE_ID}.xml").read_bytes() == b"<doc>1</doc>"
    assert sorted(os.listdir(tmp_path / "inbox")) == [f"{MESSAGE_ID}.xml"]


async def test_second_handover_of_the_same_message_is_not_written_again(tmp_path: Path) -> None:
    """A redelivered message leaves the first file untouched."""
    adapter = DropFolderAdapter(tmp_path)
    await adapter.deliver(_handover(b"<doc>first</doc>"))
    await adapter.deliver(_handover(b"<doc>second</doc>"))
    assert (tmp_path / f"{MESSAGE_ID}.xml").read_bytes() == b"<doc>first</doc>"


async def test_unusable_message_id_is_refused_for_good(tmp_path: Path) -> None:
    """A message id that could escape the folder is a permanent failure."""
    adapter = DropFolderAdapter(tmp_path)
    with pytest.raises(PermanentDeliveryFailure):
        await adapter.deliver(_handover(message_id="../../etc/passwd"))


async def test_unwritable_folder_is_a_temporary_failure(tmp_path: Path) -> None:
    """A folder path blocked by a file is peer-unavailable, to be retried."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file, not a folder")
    adapter = DropFolderAdapter(blocker / "inbox")
    with pytest.raises(PeerUnavailable):
        await adapter.deliver(_handover())
    assert await adapter.healthy() is False


async def test_folder_removed_after_a_delivery_is_made_again_on_the_retry(tmp_path: Path) -> None:
    """A folder deleted under the adapter fails one attempt (retryable), then is recreated."""
    inbox = tmp_path / "inbox"
    adapter = DropFolderAdapter(inbox)
    await adapter.deliver(_handover(b"<doc>1</doc>"))
    (inbox / f"{MESSAGE_ID}.xml").unlink()
    inbox.rmdir()
    other = "1b1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
    with pytest.raises(PeerUnavailable):
        await adapter.deliver(_handover(b"<doc>2</doc>", message_id=other))
    await adapter.deliver(_handover(b"<doc>2</doc>", message_id=other))
    assert (inbox / f"{other}.xml").read_bytes() == b"<doc>2</doc>"
    assert sorted(os.listdir(inbox)) == [f"{other}.xml"]


async def test_large_payload_is_written_whole(tmp_path: Path) -> None:
    """A multi-megabyte document lands byte for byte (short writes are continued)."""
    payload = b"<doc>" + os.urandom(3 * 1024 * 1024).hex().encode() + b"</doc>"
    adapter = DropFolderAdapter(tmp_path)
    await adapter.deliver(_handover(payload))
    assert (tmp_path / f"{MESSAGE_ID}.xml").read_bytes() == payload
