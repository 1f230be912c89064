"""The drop-folder adapter against a real folder."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import uuid
from pathlib import Path

import pytest
import structlog

from adapters.drop_folder import (
    DropFolderAdapter,
    FolderAccess,
    FolderIntake,
    retransmission_name,
    warn_unsafe_permissions,
    write_new,
)
from gateway.app import Gateway
from gateway.core.handover import Handover
from gateway.errors import FolderUnsafe, PeerUnavailable, PermanentDeliveryFailure, SettingsError
from tests.conftest import with_message_id
from tests.integration.helpers import wait_for_file

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


REQUEST_ID = "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c"


async def test_retransmission_is_written_beside_the_original_under_a_marked_name(
    tmp_path: Path,
) -> None:
    """A copy sent again on request lands as <id>.retransmission-<request>.xml while the original
    is still there; a repeat of the copy is not written again."""
    adapter = DropFolderAdapter(tmp_path)
    await adapter.deliver(_handover(b"<doc>1</doc>"))
    copy = Handover(
        message_id=MESSAGE_ID,
        sender="SG",
        receiver="TH",
        document_type="EFD",
        payload=b"<doc>1</doc>",
        retransmission_request=REQUEST_ID,
    )
    await adapter.deliver(copy)
    await adapter.deliver(copy)
    marked = f"{MESSAGE_ID}.retransmission-{REQUEST_ID}.xml"
    assert sorted(os.listdir(tmp_path)) == sorted([f"{MESSAGE_ID}.xml", marked])
    assert (tmp_path / marked).read_bytes() == b"<doc>1</doc>"
    assert adapter.path_for(MESSAGE_ID, REQUEST_ID) == tmp_path / marked
    assert retransmission_name(marked) == (MESSAGE_ID, REQUEST_ID)
    assert retransmission_name(f"{MESSAGE_ID}.xml") is None


async def test_retransmission_with_an_unusable_request_id_is_refused_for_good(
    tmp_path: Path,
) -> None:
    """A request id that could escape the folder is a permanent failure, nothing written."""
    adapter = DropFolderAdapter(tmp_path)
    copy = Handover(
        message_id=MESSAGE_ID,
        sender="SG",
        receiver="TH",
        document_type="EFD",
        payload=b"<doc/>",
        retransmission_request="../x",
    )
    with pytest.raises(PermanentDeliveryFailure):
        await adapter.deliver(copy)
    assert os.listdir(tmp_path) == []


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


async def test_folder_removed_after_a_delivery_is_made_again(tmp_path: Path) -> None:
    """A folder deleted under the adapter is made again by the next delivery."""
    inbox = tmp_path / "inbox"
    adapter = DropFolderAdapter(inbox)
    await adapter.deliver(_handover(b"<doc>1</doc>"))
    (inbox / f"{MESSAGE_ID}.xml").unlink()
    inbox.rmdir()
    other = "1b1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
    await adapter.deliver(_handover(b"<doc>2</doc>", message_id=other))
    assert (inbox / f"{other}.xml").read_bytes() == b"<doc>2</doc>"
    assert sorted(os.listdir(inbox)) == [f"{other}.xml"]


async def test_large_payload_is_written_whole(tmp_path: Path) -> None:
    """A multi-megabyte document lands byte for byte (short writes are continued)."""
    payload = b"<doc>" + os.urandom(3 * 1024 * 1024).hex().encode() + b"</doc>"
    adapter = DropFolderAdapter(tmp_path)
    await adapter.deliver(_handover(payload))
    assert (tmp_path / f"{MESSAGE_ID}.xml").read_bytes() == payload


async def test_delivered_file_is_not_readable_by_others(tmp_path: Path) -> None:
    """The document is created 0640 at most: never readable or writable by other users."""
    adapter = DropFolderAdapter(tmp_path)
    await adapter.deliver(_handover())
    mode = stat.S_IMODE(os.stat(tmp_path / f"{MESSAGE_ID}.xml").st_mode)
    assert mode & ~0o640 == 0, oct(mode)


async def test_inbox_that_is_a_link_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """An inbox replaced by a symbolic link is folder-unsafe (retryable); its target stays empty."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "inbox").symlink_to(elsewhere)
    adapter = DropFolderAdapter(tmp_path / "inbox")
    with pytest.raises(FolderUnsafe) as raised:
        await adapter.deliver(_handover())
    assert raised.value.retryable and raised.value.code == "folder-unsafe"
    assert os.listdir(elsewhere) == []
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FolderUnsafe):  # not made through a dangling link either
        await DropFolderAdapter(tmp_path / "dangling").deliver(_handover())
    assert not (tmp_path / "nowhere").exists()
    assert await adapter.healthy() is False
    with pytest.raises(FolderUnsafe):
        await adapter.has_received(MESSAGE_ID)


async def test_inbox_that_is_a_file_is_unavailable_and_left_alone(tmp_path: Path) -> None:
    """A plain file where the inbox should be is peer-unavailable (retried) and left as it was."""
    (tmp_path / "inbox").write_bytes(b"not a folder")
    adapter = DropFolderAdapter(tmp_path / "inbox")
    with pytest.raises(PeerUnavailable) as raised:
        await adapter.deliver(_handover())
    assert raised.value.code == "peer-unavailable"
    assert await adapter.healthy() is False
    assert (tmp_path / "inbox").read_bytes() == b"not a folder"


async def test_link_under_the_final_name_is_not_taken_as_delivered(tmp_path: Path) -> None:
    """A link planted as <message-id>.xml is neither followed nor counted as the delivery."""
    victim = tmp_path / "victim.xml"
    victim.write_bytes(b"<victim/>")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / f"{MESSAGE_ID}.xml").symlink_to(victim)
    adapter = DropFolderAdapter(inbox)
    assert await adapter.has_received(MESSAGE_ID) is False
    with pytest.raises(FolderUnsafe):
        await adapter.deliver(_handover(b"<doc>new</doc>"))
    assert victim.read_bytes() == b"<victim/>"


async def test_planted_temporary_names_are_never_written_through(tmp_path: Path) -> None:
    """Links planted under the old predictable temporary names leave their targets unchanged."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    planted = [f".{MESSAGE_ID}.tmp", f"{MESSAGE_ID}.tmp", f".{MESSAGE_ID}.xml.tmp"]
    for name in planted:
        (inbox / name).symlink_to(victim)
    await DropFolderAdapter(inbox).deliver(_handover(b"<doc>1</doc>"))
    assert victim.read_bytes() == b"precious"
    assert (inbox / f"{MESSAGE_ID}.xml").read_bytes() == b"<doc>1</doc>"
    assert sorted(os.listdir(inbox)) == sorted([*planted, f"{MESSAGE_ID}.xml"])


def test_temporary_names_are_unpredictable(tmp_path: Path) -> None:
    """Two writes of the same name use different temporary names, made with O_EXCL."""
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    seen: list[str] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        seen.append(path)
        assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
        return real_open(path, flags, mode, dir_fd=dir_fd)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "open", spy)
            write_new(folder, "a.xml", b"1")
            write_new(folder, "b.xml", b"2")
    finally:
        os.close(folder)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(re.fullmatch(r"\.[0-9a-f]{32}\.tmp", name) for name in seen)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")
async def test_inbox_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """An inbox owned by a user who is neither the gateway nor the party's owner is not used."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.chown(inbox, 54321, -1)
    with pytest.raises(FolderUnsafe):
        await DropFolderAdapter(inbox).deliver(_handover())
    assert os.listdir(inbox) == []
    allowed = DropFolderAdapter(inbox, FolderAccess.from_options({"owner": "54321"}))
    await allowed.deliver(_handover())
    assert os.listdir(inbox) == [f"{MESSAGE_ID}.xml"]


def test_permission_check_names_what_is_wrong(tmp_path: Path) -> None:
    """World- or group-writable folders get folder_permissions_unsafe; a safe one does not."""
    safe, world, group = tmp_path / "safe", tmp_path / "world", tmp_path / "group"
    for folder, mode in ((safe, 0o750), (world, 0o777), (group, 0o770)):
        folder.mkdir()
        folder.chmod(mode)
    with structlog.testing.capture_logs() as logs:
        warned = warn_unsafe_permissions("TH", [safe, world, group], FolderAccess())
    assert warned == 2
    assert [entry["event"] for entry in logs] == ["folder_permissions_unsafe"] * 2
    by_folder = {entry["folder"]: entry["problems"] for entry in logs}
    assert any("every user" in p for p in by_folder[str(world)])
    assert any("group" in p for p in by_folder[str(group)])
    own_group = FolderAccess(group=os.stat(group).st_gid)
    assert warn_unsafe_permissions("TH", [group], own_group) == 0


def test_unknown_owner_is_a_settings_error() -> None:
    """An owner or group that does not exist on the machine is refused at start."""
    with pytest.raises(SettingsError) as raised:
        FolderAccess.from_options({"owner": "no-such-user-asw", "group": "no-such-group-asw"})
    assert len(raised.value.problems) == 2


@pytest.mark.rabbitmq
async def test_two_workers_scanning_one_outbox_move_each_file_once(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Worker processes share an outbox: each file is submitted, moved and delivered once."""
    outbox = Path(running_gateway.settings.parties["SG"].options["outbox"])
    outbox.mkdir(parents=True)
    message_ids = [str(uuid.uuid4()) for _ in range(10)]
    for number, message_id in enumerate(message_ids):
        temporary = outbox / f".{number}.tmp"
        temporary.write_bytes(with_message_id(sample_formd, message_id))
        temporary.rename(outbox / f"{number:02}.xml")
    submit = running_gateway.intakes[0]._submit
    workers = [FolderIntake("SG", outbox, submit) for _ in range(2)]
    with structlog.testing.capture_logs() as logs:
        counts = await asyncio.gather(*(worker.scan() for worker in workers))
    assert not [e for e in logs if e["event"] in {"intake_scan_failed", "intake_file_failed"}]
    assert sum(c["refused"] + c["failed"] + c["deferred"] for c in counts) == 0
    assert sorted(os.listdir(outbox / "done")) == [f"{n:02}.xml" for n in range(10)]
    th_inbox = Path(running_gateway.settings.parties["TH"].options["directory"])
    for message_id in message_ids:
        assert await wait_for_file(th_inbox / f"{message_id}.xml")
