"""Opening a journal from its URL: backend choice, refusals, and unreachable storage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import JournalUnavailable
from gateway.journal import SqliteJournal, open_journal
from gateway.journal.postgres import PostgresJournal


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


async def test_postgres_unreachable_is_unavailable() -> None:
    """A PostgreSQL server that does not answer is reported as JournalUnavailable."""
    with pytest.raises(JournalUnavailable):
        await PostgresJournal.open(
            "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", connect_timeout=1.5
        )
