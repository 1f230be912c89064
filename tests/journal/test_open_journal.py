"""Opening a journal from its URL: backend choice, refusals, and unreachable storage."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import JournalUnavailable
from gateway.journal import AcceptResult, SqliteJournal, open_journal
from gateway.journal.postgres import PostgresJournal
from tests.journal.conftest import T0, make_record


async def test_unknown_scheme_is_refused() -> None:
    """Only sqlite and postgresql URLs name a journal."""
    with pytest.raises(ValueError, match="scheme"):
        await open_journal("mysql://localhost/journal")


async def test_sqlite_url_with_host_is_refused() -> None:
    """sqlite://host/path is a typo for sqlite:///path and is refused, not guessed."""
    with pytest.raises(ValueError, match="no host"):
        await open_journal("sqlite://journal.db")


async def test_sqlite_synchronous_mode_is_checked(tmp_path: Path) -> None:
    """An unknown synchronous mode is refused; NORMAL is accepted on request."""
    with pytest.raises(ValueError, match="synchronous"):
        await open_journal(f"sqlite://{tmp_path / 'j.db'}?synchronous=off")
    journal = await open_journal(f"sqlite://{tmp_path / 'j.db'}?synchronous=normal")
    assert isinstance(journal, SqliteJournal)
    await journal.close()


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer gateway (higher schema version) is not touched."""
    path = tmp_path / "j.db"
    journal = await open_journal(f"sqlite://{path}")
    await journal.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE journal_schema SET version = 99")
    db.close()
    with pytest.raises(JournalUnavailable, match="schema version 99"):
        await open_journal(f"sqlite://{path}")


async def test_sqlite_unwritable_path_is_unavailable(tmp_path: Path) -> None:
    """A journal file that cannot be created is reported as JournalUnavailable."""
    with pytest.raises(JournalUnavailable):
        await open_journal(f"sqlite://{tmp_path / 'missing-dir' / 'j.db'}")


async def test_sqlite_files_are_private(tmp_path: Path) -> None:
    """The journal file and its -wal and -shm files are created 0600 even under umask 022."""
    path = tmp_path / "j.db"
    previous = os.umask(0o022)
    try:
        journal = await open_journal(f"sqlite://{path}")
        try:
            await journal.record_accepted(make_record(b"<x/>"), b"<x/>", at=T0)
            files = [path, path.with_name("j.db-wal"), path.with_name("j.db-shm")]
            assert all(file.exists() for file in files)  # WAL mode made both beside the file
            assert {file.name: stat.S_IMODE(file.stat().st_mode) for file in files} == {
                file.name: 0o600 for file in files
            }
        finally:
            await journal.close()
    finally:
        os.umask(previous)


async def test_sqlite_wider_existing_file_is_tightened(tmp_path: Path) -> None:
    """An existing journal file readable by others is tightened to 0600 when opened."""
    path = tmp_path / "j.db"
    path.touch()
    path.chmod(0o644)
    journal = await open_journal(f"sqlite://{path}")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await journal.close()


async def test_postgres_unreachable_is_unavailable() -> None:
    """A PostgreSQL server that does not answer is reported as JournalUnavailable."""
    with pytest.raises(JournalUnavailable):
        await PostgresJournal.open(
            "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", connect_timeout=1.5
        )


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """Another process's writer, as SQLite sees it: a second connection mid-transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        db.execute("COMMIT")
    finally:
        db.close()


@contextlib.contextmanager
def _write_lock_held(path: Path, seconds: float) -> Iterator[None]:
    """Another writer holds the journal's write lock for ``seconds`` from entry."""
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, seconds, held))
    holder.start()
    held.wait(5)
    try:
        yield
    finally:
        holder.join()


async def test_sqlite_write_waits_for_another_writers_lock(tmp_path: Path) -> None:
    """A write that meets another connection's write lock waits for it, then succeeds."""
    path = tmp_path / "j.db"
    journal = await open_journal(f"sqlite://{path}")
    try:
        with _write_lock_held(path, 0.3):
            started = time.monotonic()
            record = make_record(b"<x/>")
            outcome = await journal.record_accepted(record, b"<x/>", at=T0)
            waited = time.monotonic() - started
        assert outcome.result is AcceptResult.ACCEPTED
        assert waited >= 0.2  # it really met the lock ...
        assert await journal.get(record.message_id) is not None  # ... then wrote
    finally:
        await journal.close()


async def test_sqlite_write_gives_up_on_a_lock_held_too_long(tmp_path: Path) -> None:
    """A lock held past the operation timeout makes the journal unavailable, nothing written."""
    path = tmp_path / "j.db"
    journal = await open_journal(f"sqlite://{path}", op_timeout=0.3)
    try:
        record = make_record(b"<x/>")
        with _write_lock_held(path, 1.0), pytest.raises(JournalUnavailable, match="locked"):
            await journal.record_accepted(record, b"<x/>", at=T0)
        assert await journal.get(record.message_id) is None
    finally:
        await journal.close()
