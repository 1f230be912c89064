"""Drop-folder adapter: each delivered document becomes one file in the receiver's folder.

Files are written atomically: into a hidden temporary name in the same folder, flushed and
fsynced, then renamed to ``<message-id>.xml`` and the folder fsynced, so a reader never sees a
half-written document and a crash never leaves one under the final name. A message handed over
twice (after a crash between rename and ack) finds its file already there and is not written
again.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from pathlib import Path

from gateway.core.handover import Handover
from gateway.errors import PeerUnavailable, PermanentDeliveryFailure

_SAFE_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class DropFolderAdapter:
    """Writes documents into a folder the national single window watches."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

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
            self.directory.mkdir(parents=True, exist_ok=True)
            if target.exists():
                return
            temporary = self.directory / f".{handover.message_id}.tmp"
            with temporary.open("wb") as handle:
                handle.write(handover.payload)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(target)
            folder = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise PeerUnavailable(
                f"Could not write into the drop folder {self.directory}: {exc.strerror}"
            ) from exc

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
