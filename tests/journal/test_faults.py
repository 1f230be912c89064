"""Journal faults on both backends: every driver error is a clean 503, every wait is bounded.

Real failures only: SQLite's own read-only and full errors, a journal file deleted or replaced
under the open journal, a lock held by another connection, a stalled journal thread; on the
shared PostgreSQL server, sessions of our own that are read-only (``default_transaction_read_only``
in the URL's options, nothing reconfigured), a row lock held by another connection, and our own
backends terminated (``pg_terminate_backend`` by a unique ``application_name``); a private
cluster (``tests.faults.private_postgres``) stopped with SIGSTOP, as a frozen disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import psycopg_pool
import pytest

from gateway.core.states import MessageState
from gateway.errors import (
    JournalFull,
    JournalReadOnly,
    JournalReplaced,
    JournalUnavailable,
)
from gateway.journal import AcceptResult, Journal, SqliteJournal
from gateway.journal import postgres as postgres_journal
from gateway.journal.postgres import PostgresJournal
from gateway.journal.sqlite import _translated
from tests.faults.outage import cluster_pids, freeze
from tests.faults.private_postgres import private_postgres
from tests.journal.conftest import POSTGRES_URL, at, fresh_postgres_journal, make_record

PAYLOAD = b"<EFormD>fault</EFormD>"


async def _accept(journal: Journal) -> str:
    """Record one new message; its id."""
    record = make_record(PAYLOAD)
    outcome = await journal.record_accepted(record, PAYLOAD, at=at(1))
    assert outcome.result is AcceptResult.ACCEPTED
    return record.message_id


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_errors_translate_to_clear_codes(tmp_path: Path) -> None:
    """SQLite's real read-only, full and locked errors become 503 codes, never a 500."""
    path = tmp_path / "t.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE t (x BLOB)")
    db.close()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as raised:
        readonly.execute("INSERT INTO t VALUES (1)")
    assert isinstance(_translated(raised.value), JournalReadOnly)
    full = sqlite3.connect(path, isolation_level=None)
    full.execute(f"PRAGMA max_page_count = {full.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as raised:
        full.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert isinstance(_translated(raised.value), JournalFull)
    full.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as raised:
        other.execute("BEGIN IMMEDIATE")
    locked = _translated(raised.value)
    assert type(locked) is JournalUnavailable
    for error in (_translated(raised.value), JournalReadOnly("x"), JournalFull("x")):
        assert (error.http_status, error.retryable) == (503, True)
    for connection in (readonly, full, other):
        connection.close()


async def test_sqlite_deleted_journal_refuses_writes_with_clear_code(tmp_path: Path) -> None:
    """A journal file deleted under the gateway refuses the very next write: journal-replaced."""
    path = tmp_path / "j.db"
    journal = await SqliteJournal.open(path)
    try:
        kept = await _accept(journal)
        for name in ("j.db", "j.db-wal", "j.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        with pytest.raises(JournalReplaced) as raised:
            await _accept(journal)
        assert raised.value.code == "journal-replaced"
        assert raised.value.http_status == 503
        status = await journal.status()
        assert status.state == "replaced"
        assert status.reason is not None
        assert "deleted" in status.reason
        assert await journal.get(kept) is not None  # reads of what it had still answer
        with pytest.raises(JournalReplaced):  # and it stays refusing
            await _accept(journal)
    finally:
        await journal.close()


async def test_sqlite_replaced_journal_is_detected(tmp_path: Path) -> None:
    """Another file moved over the journal's path is noticed (inode check), writes refused."""
    path = tmp_path / "j.db"
    journal = await SqliteJournal.open(path)
    other = await SqliteJournal.open(tmp_path / "other.db")
    try:
        await _accept(journal)
        await other.close()
        os.replace(tmp_path / "other.db", path)
        with pytest.raises(JournalReplaced, match="replaced"):
            await _accept(journal)
        assert not await journal.healthy()
    finally:
        await journal.close()


OPEN_READ_ONLY = """
import asyncio, sys
from gateway.errors import GatewayError
from gateway.journal import open_journal
async def main():
    try:
        journal = await open_journal(sys.argv[1], op_timeout=0.5)
    except GatewayError as exc:
        print(exc.code)
        return
    await journal.close()
    print("opened")
asyncio.run(main())
"""


async def test_sqlite_unwritable_journal_is_never_opened_read_only(tmp_path: Path) -> None:
    """A journal file the process cannot write is refused (journal-read-only), not opened
    read-only; once writable it opens (as root, run without the permission override)."""
    path = tmp_path / "j.db"
    await (await SqliteJournal.open(path)).close()
    path.chmod(0o400)
    tmp_path.chmod(0o755)
    drop = (
        [
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
        ]
        if os.geteuid() == 0
        else []
    )

    def try_open() -> str:
        done = subprocess.run(
            [*drop, sys.executable, "-c", OPEN_READ_ONLY, f"sqlite://{path}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        return done.stdout.strip().splitlines()[-1]

    assert await asyncio.to_thread(try_open) == "journal-read-only"
    path.chmod(0o600)
    assert await asyncio.to_thread(try_open) == "opened"


async def test_sqlite_lock_wait_is_bounded_by_op_timeout(tmp_path: Path) -> None:
    """Another process's lock held past the operation timeout: 503 within the bound."""
    path = tmp_path / "j.db"
    journal = await SqliteJournal.open(path, op_timeout=0.5)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(JournalUnavailable):
            await _accept(journal)
        waited = time.monotonic() - started
        assert 0.4 <= waited < 1.5
        holder.execute("ROLLBACK")
        await _accept(journal)  # free again: writes at once
    finally:
        holder.close()
        await journal.close()


async def test_sqlite_stalled_disk_answers_within_op_timeout(tmp_path: Path) -> None:
    """A journal thread stuck (as on a frozen disk) gives 503 within the bound, then recovers."""
    journal = await SqliteJournal.open(tmp_path / "j.db", op_timeout=0.5)
    try:
        stuck = journal._executor.submit(time.sleep, 1.5)  # the thread blocks, as in a syscall
        started = time.monotonic()
        with pytest.raises(JournalUnavailable, match="did not answer"):
            await _accept(journal)
        assert time.monotonic() - started < 1.2
        status = await journal.status()
        assert status.state == "unavailable"
        stuck.result()
        message_id = await _accept(journal)
        assert await journal.get(message_id) is not None
        assert (await journal.status()).ok
    finally:
        await journal.close()


async def test_sqlite_full_journal_is_journal_full(tmp_path: Path) -> None:
    """A journal that runs out of room answers journal-full (503), and writes again once freed."""
    journal = await SqliteJournal.open(tmp_path / "j.db")
    try:
        await _accept(journal)
        pages = await journal._read(lambda d: d.execute("PRAGMA page_count").fetchone()[0])
        await journal._read(lambda d: d.execute(f"PRAGMA max_page_count = {pages}"))
        big = b"<x>" + os.urandom(200_000).hex().encode() + b"</x>"
        record = make_record(big)
        with pytest.raises(JournalFull) as raised:
            await journal.record_accepted(record, big, at=at(1))
        assert raised.value.code == "journal-full"
        assert await journal.get(record.message_id) is None
    finally:
        await journal.close()


# --- PostgreSQL -------------------------------------------------------------------------------


async def _backends(name: str) -> set[int]:
    """Pids of the server sessions whose application_name is ``name``."""
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
        return {row[0] for row in await cursor.fetchall()}


async def test_postgres_read_only_is_translated_and_connection_dropped() -> None:
    """A read-only session (as on a standby after fail-over) is journal-read-only, not a 500,
    and the connection that saw it is closed (a fresh one would reach a new primary)."""
    async with fresh_postgres_journal() as url:
        name = f"jf{uuid.uuid4().hex[:10]}"
        journal = await PostgresJournal.open(
            f"{url}&application_name={name}&pool_min_size=1&pool_max_size=1"
        )
        try:
            async with journal._connection() as cur:  # the one session turns read-only
                await cur.execute("SET default_transaction_read_only = on")
            before = await _backends(name)
            assert len(before) == 1
            with pytest.raises(JournalReadOnly) as raised:
                await _accept(journal)
            assert (raised.value.http_status, raised.value.retryable) == (503, True)
            assert raised.value.code == "journal-read-only"
            await asyncio.sleep(0.3)
            assert not (before & await _backends(name))  # that session is gone ...
            message_id = await _accept(journal)  # ... and a fresh one writes: healed
            assert await journal.get(message_id) is not None
        finally:
            await journal.close()


async def test_postgres_row_lock_wait_is_bounded() -> None:
    """A statement stuck behind another session's row lock ends at the op timeout: 503."""
    async with fresh_postgres_journal() as url:
        journal = await PostgresJournal.open(url, op_timeout=0.7)
        try:
            message_id = await _accept(journal)
            async with await psycopg.AsyncConnection.connect(url) as holder:
                await holder.execute(
                    "SELECT 1 FROM messages WHERE message_id = %s FOR UPDATE", (message_id,)
                )
                started = time.monotonic()
                with pytest.raises(JournalUnavailable):
                    await journal.transition(message_id, MessageState.QUEUED, at=at(2))
                assert time.monotonic() - started < 2.0
                await holder.rollback()
            assert await journal.transition(message_id, MessageState.QUEUED, at=at(3))
        finally:
            await journal.close()


async def test_postgres_terminated_backends_are_a_clean_503_then_heal() -> None:
    """Every backend of the journal terminated: a 503 at most, then it writes again by itself."""
    async with fresh_postgres_journal() as url:
        name = f"jf{uuid.uuid4().hex[:10]}"
        journal = await PostgresJournal.open(f"{url}&application_name={name}")
        try:
            await _accept(journal)
            async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as a:
                await a.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (name,),
                )
            outcomes: list[str] = []
            for _ in range(5):
                try:
                    await _accept(journal)
                    outcomes.append("ok")
                except JournalUnavailable as exc:
                    outcomes.append(exc.code)
                await asyncio.sleep(0.1)
            assert set(outcomes) <= {"ok", "journal-unavailable"}
            assert outcomes[-1] == "ok"
        finally:
            await journal.close()


async def test_postgres_frozen_server_answers_within_op_timeout() -> None:
    """A stalled (SIGSTOPped) private cluster: each call fails within op_timeout, then heals."""
    with private_postgres() as cluster:
        journal = await PostgresJournal.open(cluster.url, op_timeout=1.0)
        try:
            await _accept(journal)  # a pooled connection now waits on a backend
            pids = cluster_pids(cluster)
            freeze(pids, on=True)
            try:
                for _ in range(2):
                    started = time.monotonic()
                    with pytest.raises(JournalUnavailable):
                        await _accept(journal)
                    assert time.monotonic() - started < 1.0 + 0.75
            finally:
                freeze(pids, on=False)
            deadline = time.monotonic() + 15
            while True:
                try:
                    await _accept(journal)
                    break
                except JournalUnavailable:
                    assert time.monotonic() < deadline, "the journal did not heal"
                    await asyncio.sleep(0.2)
        finally:
            await journal.close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), "journal-read-only"),
        (psycopg.errors.DiskFull("no space left on device"), "journal-full"),
        (psycopg.errors.SerializationFailure("could not serialize"), "journal-unavailable"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), "journal-unavailable"),
        (psycopg.errors.AdminShutdown("terminating connection"), "journal-unavailable"),
        (
            psycopg.errors.CannotConnectNow("the database system is starting up"),
            "journal-unavailable",
        ),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), "journal-unavailable"),
        (psycopg.errors.QueryCanceled("statement timeout"), "journal-unavailable"),
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            "journal-unavailable",
        ),
        (psycopg.InterfaceError("the connection is closed"), "journal-unavailable"),
        (psycopg_pool.PoolTimeout("couldn't get a connection"), "journal-unavailable"),
        (TimeoutError(), "journal-unavailable"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_every_postgres_driver_error_class_is_a_retryable_503(
    error: BaseException, code: str
) -> None:
    """Each driver error class (read-only, full, serialization, locked, connection...) maps
    to a journal-* GatewayError: 503, retryable, never an internal error."""
    assert isinstance(error, postgres_journal._FAILURES)
    translated = postgres_journal._translated(error, 2.0)
    assert (translated.code, translated.http_status, translated.retryable) == (code, 503, True)
