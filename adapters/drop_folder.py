"""Drop folders: documents to an NSW are files in its inbox; documents from it, in its outbox.

Files are written atomically: into a temporary name in the same folder, fsynced, then renamed to
``<message-id>.xml`` and the folder fsynced, so a reader never sees a half-written document and a
crash never leaves one under the final name. A message handed over twice (after a crash between
rename and ack) finds its file already there and is not written again.

A re-transmission of an e-Form D (OCP Rule 29(3), ``Handover.retransmission_request`` set) is
written as ``<message-id>.retransmission-<request-id>.xml``: the same bytes as the original, under
a name of its own, so it lands even while ``<message-id>.xml`` is still in the folder and the NSW
can tell it from the original (``retransmission_name`` parses it back). A repeat of the same copy
finds its file and is not written again; a second request gets a second file.

A party controls its own folder tree and may plant links in it, so nothing here follows one.
Every folder is opened as a directory descriptor whose last component must not be a link
(``O_NOFOLLOW | O_DIRECTORY``) and must belong to the gateway's user or to the party's configured
``owner``; every file operation then works relative to that descriptor (``dir_fd=``). Files are
created with ``O_EXCL | O_NOFOLLOW`` under unpredictable names, and only plain files with a
single link are read. A folder that fails these checks is not used at all (``folder-unsafe``):
a delivery is retried and then dead-lettered, an intake stops before moving anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import json
import os
import pwd
import re
import secrets
import stat
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.core.handover import Handover, Intake, RefusalLog
from gateway.errors import (
    FolderUnsafe,
    GatewayError,
    PeerUnavailable,
    PermanentDeliveryFailure,
    RejectedMessage,
    SettingsError,
    UnsafeFile,
)

log = structlog.get_logger("adapters.drop_folder")

_SAFE_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FILE_MODE = 0o640  # the party reads the gateway's files through the folder's group
FOLDER_MODE = 0o750
_MAX_BACKOFF_SECONDS = 30.0


class FolderAccess:
    """Who may own a party's folders, and whose group write access is expected.

    The gateway's own user always may; ``owner`` (a user name or uid) is the party's OS user,
    when the party's NSW creates its folders itself. ``group`` (a group name or gid) is the group
    shared only by the party and the gateway: write access for it is not warned about.
    """

    def __init__(self, owners: Iterable[int] = (), group: int | None = None) -> None:
        self.owners = frozenset({os.geteuid(), *owners})
        self.group = group

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> FolderAccess:
        """Read ``owner`` and ``group`` from a party's adapter options."""
        problems: list[str] = []
        owners: list[int] = []
        group: int | None = None
        if owner := options.get("owner"):
            try:
                owners.append(int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid)
            except KeyError:
                problems.append(f"drop folder owner {owner!r} is not a user on this machine")
        if name := options.get("group"):
            try:
                group = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
            except KeyError:
                problems.append(f"drop folder group {name!r} is not a group on this machine")
        if problems:
            raise SettingsError(problems)
        return cls(owners, group)

    def check(self, fd: int, where: str) -> None:
        """Refuse an opened folder that is not a directory of an expected owner."""
        status = os.fstat(fd)
        if not stat.S_ISDIR(status.st_mode):
            raise FolderUnsafe(
                f"The drop folder {where} is not a folder; the gateway does not use it."
            )
        self.check_owner(status, where)

    def check_owner(self, status: os.stat_result, where: str) -> None:
        """Refuse a folder that belongs to neither the gateway nor the party's owner."""
        if status.st_uid not in self.owners:
            raise FolderUnsafe(
                f"The drop folder {where} belongs to user {status.st_uid}, not to the gateway or "
                "the party's configured owner; the gateway does not use it."
            )

    def problems(self, path: Path) -> list[str]:
        """What is wrong with the permissions of ``path`` (nothing when it is missing)."""
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [f"cannot be checked ({exc.strerror})"]
        if stat.S_ISLNK(status.st_mode):
            return ["is a symbolic link"]
        if not stat.S_ISDIR(status.st_mode):
            return ["is not a folder"]
        found: list[str] = []
        if status.st_uid not in self.owners:
            found.append(
                f"is owned by uid {status.st_uid}, not by the gateway (uid {os.geteuid()}) "
                "or the party's configured owner"
            )
        if status.st_mode & stat.S_IWOTH:
            found.append("is writable by every user")
        if status.st_mode & stat.S_IWGRP and status.st_gid != self.group:
            found.append(
                f"is writable by group {status.st_gid}, which is not the party's configured group"
            )
        return found


def warn_unsafe_permissions(country: str, folders: Iterable[Path], access: FolderAccess) -> int:
    """Log ``folder_permissions_unsafe`` for each folder another user could tamper with."""
    warned = 0
    for folder in folders:
        if found := access.problems(folder):
            log.warning(
                "folder_permissions_unsafe", country=country, folder=str(folder), problems=found
            )
            warned += 1
    return warned


def open_folder(path: Path, access: FolderAccess, *, create: bool) -> int:
    """A descriptor of the folder ``path``; its last component is never followed as a link.

    The path above it is the operator's configuration and is taken as it is.
    """
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_subfolder(parent, path.name, access, create=create, where=str(path))
    finally:
        os.close(parent)


def open_subfolder(
    parent: int, name: str, access: FolderAccess, *, create: bool, where: str
) -> int:
    """A descriptor of ``name`` inside the folder ``parent``, made when missing and wanted."""
    try:
        try:
            fd = os.open(name, _DIRECTORY, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):  # made meanwhile: checked below
                os.mkdir(name, FOLDER_MODE, dir_fd=parent)
            fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        present = _entry(parent, name)
        if present is None or stat.S_ISLNK(present.st_mode):
            raise FolderUnsafe(
                f"The drop folder {where} is a symbolic link; the gateway follows no links there."
            ) from exc
        # A plain file in the way is a broken set-up rather than an attack: nothing is written
        # into it either, and delivery is retried like any unavailable receiver.
        raise PeerUnavailable(f"The drop folder {where} is a file, not a folder.") from exc
    try:
        access.check(fd, where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _entry(folder: int, name: str) -> os.stat_result | None:
    """The entry ``name`` itself (never what a link points at), or None."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None


def write_new(folder: int, name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` in ``folder``: to a fresh unpredictable name, then renamed.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW``, so a planted entry of any name is
    never written through; the rename replaces a directory entry and never follows a link.
    """
    temporary = f".{secrets.token_hex(16)}.tmp"
    handle = os.open(temporary, _NEW_FILE, FILE_MODE, dir_fd=folder)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fsync(handle)
        finally:
            os.close(handle)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
    os.fsync(folder)


RETRANSMISSION_MARK = ".retransmission-"
"""Between the e-Form D's message id and the request's in a re-transmitted copy's file name."""
_RETRANSMISSION_NAME = re.compile(
    rf"^(?P<message_id>{_SAFE_NAME.pattern[1:-1]}){re.escape(RETRANSMISSION_MARK)}"
    rf"(?P<request>{_SAFE_NAME.pattern[1:-1]})\.xml$"
)


def file_name(message_id: str, retransmission_request: str | None = None) -> str:
    """``<message-id>.xml``, or ``<message-id>.retransmission-<request-id>.xml`` for the copy
    of an e-Form D sent again on request (OCP Rule 29(3))."""
    if retransmission_request is None:
        return f"{message_id}.xml"
    return f"{message_id}{RETRANSMISSION_MARK}{retransmission_request}.xml"


def retransmission_name(name: str) -> tuple[str, str] | None:
    """(e-Form D id, request id) when ``name`` is a re-transmitted copy's file name."""
    found = _RETRANSMISSION_NAME.match(name)
    return None if found is None else (found["message_id"], found["request"])


_OPTIONS_POLL_DEFAULT = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DropFolderOptions:
    """The checked ``options`` table of a party using the ``drop-folder`` adapter."""

    directory: Path
    """Where documents for the party are written."""
    outbox: Path | None = None
    """Where the party leaves documents for the gateway to take (no intake when absent)."""
    poll_seconds: float = _OPTIONS_POLL_DEFAULT
    access: FolderAccess = field(default_factory=FolderAccess)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> DropFolderOptions:
        """Check every option; raise one ``SettingsError`` listing every problem."""
        problems: list[str] = []
        directory = options.get("directory", "")
        if not directory:
            problems.append("directory: required")
        raw_poll = options.get("poll_seconds")
        poll = _OPTIONS_POLL_DEFAULT
        if raw_poll is not None:
            try:
                poll = float(raw_poll)
            except ValueError:
                problems.append(f"poll_seconds: expected a number, got {raw_poll!r}")
            else:
                if not poll > 0:
                    problems.append(f"poll_seconds: must be greater than 0, got {raw_poll!r}")
        try:
            access = FolderAccess.from_options(options)
        except SettingsError as exc:
            problems.extend(exc.problems)
            access = FolderAccess()
        if problems:
            raise SettingsError([f"drop-folder {p}" for p in problems])
        outbox = options.get("outbox")
        return cls(
            directory=Path(directory),
            outbox=Path(outbox) if outbox else None,
            poll_seconds=poll,
            access=access,
        )


class DropFolderAdapter:
    """Writes documents into a folder the national single window watches."""

    confirms_on_pickup = False

    def __init__(self, directory: Path, access: FolderAccess | None = None) -> None:
        self.directory = directory
        self.access = access or FolderAccess()

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> DropFolderAdapter:
        """Build from the ``options`` table of a party's configuration."""
        checked = DropFolderOptions.parse(options)
        return cls(checked.directory, checked.access)

    def path_for(self, message_id: str, retransmission_request: str | None = None) -> Path:
        """Where the document of ``message_id`` lands (its copy sent again on request
        ``retransmission_request``, if given)."""
        return self.directory / file_name(message_id, retransmission_request)

    def folders(self) -> list[Path]:
        """The folders this adapter writes into, for the start-up permission check."""
        return [self.directory]

    async def deliver(self, handover: Handover) -> None:
        """Write the document atomically; a repeat of the same message is a no-op."""
        for identifier in (handover.message_id, handover.retransmission_request):
            if identifier is not None and not _SAFE_NAME.match(identifier):
                raise PermanentDeliveryFailure(
                    f"Message id {identifier!r} cannot be used as a file name."
                )
        await asyncio.to_thread(self._write, handover)

    def _write(self, handover: Handover) -> None:
        name = file_name(handover.message_id, handover.retransmission_request)
        try:
            folder = open_folder(self.directory, self.access, create=True)
            try:
                present = _entry(folder, name)
                if present is not None:
                    if stat.S_ISREG(present.st_mode):
                        return
                    raise FolderUnsafe(
                        f"{self.directory / name} exists and is not a plain file; the gateway "
                        "does not write over it."
                    )
                write_new(folder, name, handover.payload)
            finally:
                os.close(folder)
        except OSError as exc:
            raise PeerUnavailable(
                f"Could not write into the drop folder {self.directory}: {exc.strerror}"
            ) from exc

    async def has_received(self, message_id: str) -> bool | None:
        """The document is already in the folder under its final name, as a plain file."""
        if not _SAFE_NAME.match(message_id):
            return None
        return await asyncio.to_thread(self._has, file_name(message_id))

    def _has(self, name: str) -> bool:
        try:
            folder = open_folder(self.directory, self.access, create=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise PeerUnavailable(
                f"Could not read the drop folder {self.directory}: {exc.strerror}"
            ) from exc
        try:
            present = _entry(folder, name)
        finally:
            os.close(folder)
        return present is not None and stat.S_ISREG(present.st_mode)

    async def healthy(self) -> bool:
        """The folder exists (or can be made), is safe to use and is writable."""
        return await asyncio.to_thread(self._writable)

    def _writable(self) -> bool:
        try:
            folder = open_folder(self.directory, self.access, create=True)
        except (OSError, PeerUnavailable):  # FolderUnsafe included
            return False
        try:
            return os.access(".", os.W_OK, dir_fd=folder)
        finally:
            os.close(folder)

    async def close(self) -> None:
        """Nothing to release."""


class FolderIntake:
    """Watches an NSW's outbox folder and submits every document it finds there.

    The NSW writes each document under a temporary name (a leading dot, or ``.tmp``) and renames
    it to ``*.xml`` when complete; only such names are read, so nothing half-written is read.
    An accepted file moves to ``done/``; a refused one moves to ``failed/`` beside a
    ``<name>.problem.json`` saying why; so does a file the gateway failed on unexpectedly, so
    one file never holds up the others. A file that could not be accepted for a temporary reason
    (broker down) stays and is tried again on the next scan. A file is submitted as its folder's
    party, so a party can only send as itself. A link, a hard-linked file or anything else that
    is not a plain file is never read: it moves to ``failed/`` as ``file-unsafe``. When the
    outbox, ``done/`` or ``failed/`` is not a real folder of an expected owner, nothing is read
    or moved until that is mended (``folder_unsafe`` is logged once).
    """

    def __init__(
        self,
        country: str,
        directory: Path,
        submit: Intake,
        *,
        poll_seconds: float = 1.0,
        access: FolderAccess | None = None,
        max_bytes: int | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.country = country
        self.directory = directory
        self.access = access or FolderAccess()
        self._submit = submit
        self._refusals = refusals  # files refused before submission (unsafe, too large)
        self._poll_seconds = poll_seconds
        self._max_bytes = max_bytes
        self._unsafe: str | None = None  # the folder problem last logged

    def folders(self) -> list[Path]:
        """The outbox and its two result folders, for the start-up permission check."""
        return [self.directory, self.directory / "done", self.directory / "failed"]

    async def run(self) -> None:
        """Scan the folder forever (until cancelled); a failed scan is logged and retried.

        The loop never ends on an error: it waits a little longer after each failed scan
        (doubling, at most 30 s) and back to the normal poll once a scan succeeds.
        """
        failures = 0
        while True:
            try:
                await self.scan()
            except Exception as exc:  # noqa: BLE001 - supervised: one error never ends the intake
                failures += 1
                delay = min(self._poll_seconds * 2**failures, _MAX_BACKOFF_SECONDS)
                log.error(  # noqa: TRY400 - our own traceback text, without frame locals
                    "intake_scan_failed",
                    country=self.country,
                    error_type=type(exc).__name__,
                    detail=str(exc)[:300],
                    traceback=_traceback(exc),
                    restart_in_seconds=delay,
                )
            else:
                failures, delay = 0, self._poll_seconds
            await asyncio.sleep(delay)

    async def scan(self) -> dict[str, int]:
        """Submit every complete document waiting now; count the outcomes."""
        counts = {"accepted": 0, "refused": 0, "deferred": 0, "failed": 0}
        try:
            outbox = await asyncio.to_thread(self._open)
        except PeerUnavailable as exc:  # FolderUnsafe, or a file where a folder should be
            self._note_unsafe(exc)
            return counts
        if outbox is None:
            return counts
        try:
            await self._scan(outbox, counts)
        except PeerUnavailable as exc:  # a result folder turned into a link during the scan
            self._note_unsafe(exc)
        finally:
            os.close(outbox.fd)
        return counts

    async def _scan(self, outbox: _Outbox, counts: dict[str, int]) -> None:
        for name in await asyncio.to_thread(outbox.waiting):
            with structlog.contextvars.bound_contextvars(intake_file=name):
                try:
                    try:
                        data = await asyncio.to_thread(outbox.read, name, self._max_bytes)
                    except RejectedMessage as exc:  # unsafe or too large: journalled, size alone
                        if self._refusals is not None:
                            await self._refusals(exc, None, channel="folder", caller=self.country)
                        raise
                    if data is None:
                        continue  # gone meanwhile
                    await self._submit(data, channel="folder", caller=self.country)
                except GatewayError as exc:
                    if exc.retryable:
                        counts["deferred"] += 1
                        return  # the broker or journal is down: try the folder again later
                    await asyncio.to_thread(outbox.refuse, name, exc)
                    counts["refused"] += 1
                    continue
                except Exception as exc:  # noqa: BLE001 - one hostile file never stops the rest
                    log.error(  # noqa: TRY400 - our own traceback text, without frame locals
                        "intake_file_failed",
                        country=self.country,
                        error_type=type(exc).__name__,
                        detail=str(exc)[:300],
                        traceback=_traceback(exc),
                    )
                    unexpected = GatewayError(
                        f"The gateway failed unexpectedly on this file ({type(exc).__name__}) "
                        "and set it aside so that the other files go on. The operator has "
                        "the details; sending it again unchanged will likely fail again."
                    )
                    await asyncio.to_thread(outbox.refuse, name, unexpected)
                    counts["failed"] += 1
                    continue
                await asyncio.to_thread(outbox.move, name, "done")
                counts["accepted"] += 1

    def _open(self) -> _Outbox | None:
        try:
            fd = open_folder(self.directory, self.access, create=False)
        except FileNotFoundError:
            return None
        outbox = _Outbox(self.directory, fd, self.access)
        try:
            outbox.check_result_folders()
        except BaseException:
            os.close(fd)
            raise
        if self._unsafe is not None:
            log.info("folder_safe_again", country=self.country, folder=str(self.directory))
            self._unsafe = None
        return outbox

    def _note_unsafe(self, error: PeerUnavailable) -> None:
        if error.detail != self._unsafe:
            log.error(
                "folder_unsafe",
                country=self.country,
                folder=str(self.directory),
                error=error.code,
                detail=error.detail,
            )
            self._unsafe = error.detail


class _Outbox:
    """An opened outbox folder: listing, reading and moving, all relative to its descriptor."""

    def __init__(self, path: Path, fd: int, access: FolderAccess) -> None:
        self.path = path
        self.fd = fd
        self.access = access

    def check_result_folders(self) -> None:
        """Refuse the whole folder when ``done/`` or ``failed/`` exists but is unsafe."""
        for name in ("done", "failed"):
            present = _entry(self.fd, name)
            if present is None:
                continue
            where = str(self.path / name)
            if not stat.S_ISDIR(present.st_mode):
                raise FolderUnsafe(
                    f"The drop folder {where} is a link or a file, not a folder; the gateway "
                    "does not use it."
                )
            self.access.check_owner(present, where)

    def waiting(self) -> list[str]:
        """The names of complete documents (``*.xml``, no leading dot), whatever their kind."""
        with os.scandir(self.fd) as entries:
            return sorted(
                e.name for e in entries if e.name.endswith(".xml") and not e.name.startswith(".")
            )

    def read(self, name: str, max_bytes: int | None) -> bytes | None:
        """The bytes of ``name`` if it is a plain file with one link; None if it is gone."""
        where = self.path / name
        try:
            handle = os.open(name, _READ_FILE, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnsafeFile(
                f"{where.name} is a link or cannot be opened as a file ({exc.strerror}); "
                "the gateway reads only plain files."
            ) from exc
        try:
            status = os.fstat(handle)
            if not stat.S_ISREG(status.st_mode):
                raise UnsafeFile(f"{where.name} is not a plain file; the gateway reads only those.")
            if status.st_nlink != 1:
                raise UnsafeFile(
                    f"{where.name} has {status.st_nlink} hard links; the gateway reads only "
                    "files that exist once. Write the document into the folder itself."
                )
            limit = -1 if max_bytes is None else max_bytes + 1  # one more: too large is refused
            with os.fdopen(os.dup(handle), "rb") as stream:
                return stream.read(limit)
        finally:
            os.close(handle)

    def move(self, name: str, into: str) -> str | None:
        """Move ``name`` into the subfolder ``into``, never over an earlier file of ours.

        None when ``name`` is gone: another gateway worker scanning the same folder took it.
        """
        folder = self._result_folder(into)
        try:
            return self._move_into(folder, name, problem=False)
        finally:
            os.close(folder)

    def refuse(self, name: str, error: GatewayError) -> None:
        """Move ``name`` into ``failed/`` and write its ``.problem.json`` beside it."""
        folder = self._result_folder("failed")
        try:
            target = self._move_into(folder, name, problem=True)
            if target is None:
                return  # another worker set it aside and wrote its problem
            problem = error.to_problem(base_uri="urn:asw-gateway:problem:", instance=name)
            text = json.dumps(problem, indent=2) + "\n"
            write_new(folder, f"{target}.problem.json", text.encode("utf-8"))
        finally:
            os.close(folder)

    def _result_folder(self, into: str) -> int:
        """A descriptor of the subfolder ``into`` (made when missing), checked like the outbox."""
        return open_subfolder(self.fd, into, self.access, create=True, where=str(self.path / into))

    def _move_into(self, folder: int, name: str, *, problem: bool) -> str | None:
        stem, dot, suffix = name.rpartition(".")
        target, counter = name, 1
        while _entry(folder, target) is not None or (
            problem and _entry(folder, f"{target}.problem.json") is not None
        ):
            target = f"{stem}.{counter}{dot}{suffix}"
            counter += 1
        try:
            os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=folder)
        except FileNotFoundError:
            return None
        return target


def _traceback(error: BaseException) -> str:
    """Where ``error`` happened: file, line and code of each frame, never the frame's values."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))[-4000:]
