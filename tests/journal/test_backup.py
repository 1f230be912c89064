"""Backups of a journal in use, restored and read back (``asw-gateway journal backup``).

SQLite: the backup command runs as its own process while this process keeps writing to the
journal (as a gateway would); the copy holds every message committed before the backup began,
each one whole, and opens as a journal. PostgreSQL: ``pg_dump`` of a journal in a database of
its own, written while messages arrive, restored with ``pg_restore`` into a new database that
the gateway then reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from gateway.core.states import MessageState
from gateway.journal import Journal, open_journal, schema_status
from tests.journal.conftest import POSTGRES_URL, T0, make_record


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "journal", *args, "--url", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def _write(journal: Journal, n: int) -> str:
    """One message accepted and queued; its id."""
    payload = f"<EFormD n='{n}'>".encode() + os.urandom(2000) + b"</EFormD>"
    entry = make_record(payload, received_at=T0 + timedelta(milliseconds=n))
    await journal.record_accepted(entry, payload, at=entry.received_at)
    await journal.transition(entry.message_id, MessageState.QUEUED, at=entry.received_at)
    return entry.message_id


async def _all_whole(journal: Journal, ids: list[str]) -> None:
    """Every message in ``ids`` reads back with its timeline and the bytes its digest names."""
    for message_id in ids:
        view = await journal.get(message_id)
        assert view is not None, message_id
        assert view.summary.state is MessageState.QUEUED
        assert [c.state for c in view.timeline][-1] is MessageState.QUEUED
        body = await journal.payload(message_id)
        assert body is not None
        assert hashlib.sha256(body).hexdigest() == view.summary.record.digest


async def test_sqlite_backup_while_writing_restores_every_committed_message(
    tmp_path: Path,
) -> None:
    """A backup taken by another process mid-load holds every message committed before it,
    whole, and the restored copy opens as a journal with the same identity."""
    source = tmp_path / "live" / "journal.db"
    source.parent.mkdir()
    url = f"sqlite://{source}"
    journal = await open_journal(url)
    written: list[str] = []
    stop = asyncio.Event()
    under_way = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            written.append(await _write(journal, n))
            n += 1
            if n == 200:
                under_way.set()

    task = asyncio.create_task(writer())
    try:
        await under_way.wait()
        committed_before = list(written)
        dest = tmp_path / "backup" / "journal-backup.db"
        dest.parent.mkdir()
        done = await asyncio.to_thread(_cli, url, "backup", str(dest))
        written_during = len(written) - len(committed_before)
    finally:
        stop.set()
        await task
        await journal.close()
    assert done.returncode == 0, done.stderr
    assert written_during > 0  # the journal really was being written meanwhile
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert not Path(f"{dest}-wal").exists()

    restored = tmp_path / "restored" / "journal.db"
    restored.parent.mkdir()
    shutil.copyfile(dest, restored)
    restored.chmod(0o600)
    copy = await open_journal(f"sqlite://{restored}")
    try:
        await _all_whole(copy, committed_before)
        counts = await copy.counts(include_test=True)
        in_copy = sum(row.count for row in counts.rows)
        assert len(committed_before) <= in_copy <= len(written)
    finally:
        await copy.close()
    assert schema_status(f"sqlite://{restored}").journal_id == schema_status(url).journal_id


def test_backup_never_overwrites(tmp_path: Path) -> None:
    """An existing file at the destination is refused, and left as it was."""
    url = f"sqlite://{tmp_path / 'journal.db'}"
    asyncio.run(_open_and_close(url))
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"keep me")
    done = _cli(url, "backup", str(dest))
    assert done.returncode == 1
    assert "exists" in done.stderr
    assert dest.read_bytes() == b"keep me"


async def _open_and_close(url: str) -> None:
    journal = await open_journal(url)
    await journal.close()


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))


@pytest.fixture
async def databases() -> AsyncIterator[list[str]]:
    """Two new PostgreSQL databases (journal, restore target), dropped afterwards."""
    names = [f"asw_backup_{uuid.uuid4().hex[:10]}", f"asw_restore_{uuid.uuid4().hex[:10]}"]
    try:
        admin = await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    async with admin:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield [_database_url(name) for name in names]
        finally:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_postgres_dump_restored_into_a_new_database_is_read_by_the_gateway(
    databases: list[str], tmp_path: Path
) -> None:
    """``journal backup`` (pg_dump) of a journal being written, ``pg_restore`` into another
    database: every message committed before the dump reads back whole there."""
    source_url, target_url = databases
    journal = await open_journal(source_url)
    written = [await _write(journal, n) for n in range(60)]
    dest = tmp_path / "journal.dump"

    async def more_writes() -> list[str]:
        return await asyncio.gather(*(_write(journal, 100 + n) for n in range(40)))

    more = asyncio.create_task(more_writes())
    done = await asyncio.to_thread(_cli, source_url, "backup", str(dest))
    await more
    await journal.close()
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600

    restore = await asyncio.to_thread(
        subprocess.run,
        ["pg_restore", "--no-owner", "--exit-on-error", "--dbname", target_url, str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restore.returncode == 0, restore.stderr
    copy = await open_journal(target_url)
    try:
        await _all_whole(copy, written)
        assert (await copy.get("no-such-message")) is None
    finally:
        await copy.close()
    assert schema_status(target_url).journal_id == schema_status(source_url).journal_id
