"""Drop folders: documents to an NSW are files in its inbox; documents from it, in its outbox.

Files are written atomically: into a hidden temporary name in the same folder, fsynced, then
renamed to ``<message-id>.xml`` and the folder fsynced, so a reader never sees a half-written
document and a crash never leaves one under the final name. A message handed over twice (after
a crash between rename and ack) finds its file already there and is not written again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import structlog

from gateway.core.handover import Handover
from gateway.errors import (
    GatewayError,
    PeerUnavailable,
    PermanentDeliveryFailure,
    RejectedMessage,
)
from gateway.submission import Submissions

log = structlog.get_logger("adapters.drop_folder")

_SAFE_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class DropFolderAdapter:
    """Writes documents into a folder the national single window watches."""

    confirms_on_pickup = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made = False  # the folder was made (or found) by this adapter

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> DropFolderAdapter:
        """Build from the ``options`` table of a party's configuration."""
        return cls(Path(options["directory"]))

    def path_for(self, message_id: str) -> Path:
        """Where the document of ``message_id`` lands."""
        return self.directory / f"{message_id}.xml"

    async def deliver(self, handover: Handover) -> None:
        """Write the document atomically; a repeat of the same message is a no-op."""
        if not _SAFE_NAME.match(handover.message_id):
            raise PermanentDeliveryFailure(
                f"Message id {handover.message_id!r} cannot be used as a file name."
            )
        await asyncio.to_thread(self._write, handover)

    def _write(self, handover: Handover) -> None:
        target = self.path_for(handover.message_id)
        try:
            if not self._made:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._made = True
            if target.exists():
                return
            temporary = self.directory / f".{handover.message_id}.tmp"
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(handover.payload)
                while view:
                    view = view[os.write(handle, view) :]
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temporary, target)
            folder = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):  # the folder was removed: make it next time
                self._made = False
            raise PeerUnavailable(
                f"Could not write into the drop folder {self.directory}: {exc.strerror}"
            ) from exc

    async def has_received(self, message_id: str) -> bool | None:
        """The document is already in the folder under its final name."""
        if not _SAFE_NAME.match(message_id):
            return None
        return await asyncio.to_thread(self.path_for(message_id).exists)

    async def healthy(self) -> bool:
        """The folder exists (or can be made) and is writable."""
        return await asyncio.to_thread(self._writable)

    def _writable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.directory, os.W_OK)

    async def close(self) -> None:
        """Nothing to release."""


class FolderIntake:
    """Watches an NSW's outbox folder and submits every document it finds there.

    The NSW writes each document under a temporary name (a leading dot, or ``.tmp``) and renames
    it to ``*.xml`` when complete; only such names are read, so nothing half-written is read.
    An accepted file moves to ``done/``; a refused one moves to ``failed/`` beside a
    ``<name>.problem.json`` saying why; a file that could not be accepted for a temporary reason
    (broker down) stays and is tried again on the next scan. A file is submitted as its folder's
    party, so a party can only send as itself.
    """

    def __init__(
        self,
        country: str,
        directory: Path,
        submissions: Submissions,
        *,
        poll_seconds: float = 1.0,
    ) -> None:
        self.country = country
        self.directory = directory
        self._submissions = submissions
        self._poll_seconds = poll_seconds

    async def run(self) -> None:
        """Scan the folder forever (until cancelled)."""
        while True:
            try:
                await self.scan()
            except OSError as exc:
                log.warning("intake_scan_failed", country=self.country, detail=str(exc))
            await asyncio.sleep(self._poll_seconds)

    async def scan(self) -> dict[str, int]:
        """Submit every complete document waiting now; count the outcomes."""
        counts = {"accepted": 0, "refused": 0, "deferred": 0}
        for path in await asyncio.to_thread(self._waiting):
            data = await asyncio.to_thread(path.read_bytes)
            with structlog.contextvars.bound_contextvars(intake_file=path.name):
                try:
                    await self._submissions.submit(data, channel="folder", caller=self.country)
                except RejectedMessage as exc:
                    await asyncio.to_thread(self._refuse, path, exc)
                    counts["refused"] += 1
                    continue
                except GatewayError:
                    counts["deferred"] += 1
                    break  # the broker or journal is down: try the folder again later
            await asyncio.to_thread(_move, path, self.directory / "done")
            counts["accepted"] += 1
        return counts

    def _waiting(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and p.suffix == ".xml" and not p.name.startswith(".")
        )

    def _refuse(self, path: Path, error: RejectedMessage) -> None:
        target = _move(path, self.directory / "failed")
        problem = error.to_problem(base_uri="urn:asw-gateway:problem:", instance=path.name)
        reason = target.with_name(target.name + ".problem.json")
        reason.write_text(json.dumps(problem, indent=2) + "\n", encoding="utf-8")


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder``, never overwriting an earlier file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    path.replace(target)
    return target
