"""The journal in one SQLite file: the default, nothing to install.

Durability and sharing:

- WAL mode, so readers never wait for the writer and several gateway processes on one host can
  share the file. Every write transaction starts with ``BEGIN IMMEDIATE``, which takes the
  write lock up front: read-then-write decisions (claim, dedupe) cannot interleave.
- A writer that finds another process holding the lock polls for it every 0.3 ms, for up to
  10 s, instead of using SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20 ms and more
  between tries and so often sleeps on after the lock is free. Two busy gateway processes on
  one file each waited 6-9 s for the lock per 2,000 transactions with the busy handler, half
  that with polling; p99 submit-to-delivery latency at half rate fell from 95-278 to 31-35 ms
  (``bench/bench_e2e.py``).
- ``synchronous=FULL`` by default: a commit returns only after the WAL is on disk, so the 202
  the ingest answers survives a power cut. ``NORMAL`` (``?synchronous=normal`` in the URL) skips
  that fsync: still safe against a crashed or killed process, but the last commits can vanish
  if the machine loses power. Choose it knowingly.
- sqlite3 blocks, so every call runs on one dedicated thread (one connection, used only from
  it); the event loop never waits on disk. One thread also serialises this process's writes,
  which SQLite would do anyway.

Timestamps are stored as ISO 8601 text in UTC with microseconds, a fixed width, so text order
is time order and an operator with the ``sqlite3`` shell can read them.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gateway.core.states import INITIAL_STATES, MessageState, next_state
from gateway.errors import JournalUnavailable, NotFound
from gateway.journal.contract import (
    DEFAULT_LEASE,
    AcceptOutcome,
    AcceptResult,
    BusinessKey,
    ClaimResult,
    CountRow,
    Counts,
    InboxAck,
    InboxDocument,
    InboxItem,
    Link,
    MessageRecord,
    MessageSummary,
    MessageView,
    StateChange,
    as_utc,
    check_payload,
    claimable_values,
    inbox_item,
    refused_claim,
    settle_known,
)
from gateway.journal.schema import (
    ATTEMPT_STATES,
    INBOX_COLUMNS,
    INBOX_FROM,
    KNOWN_SQL,
    LINK_COLUMNS,
    PURGE_BATCH,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    TIMELINE_COLUMNS,
    check_transition_target,
    known_params,
    record_values,
    summary_from_row,
)

T = TypeVar("T")

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
BUSY_TIMEOUT_SECONDS = 10.0
LOCK_POLL_SECONDS = 0.0003

_DDL = (
    "CREATE TABLE IF NOT EXISTS journal_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS messages (
        message_id TEXT PRIMARY KEY,
        sender TEXT NOT NULL,
        receiver TEXT NOT NULL,
        document_type TEXT NOT NULL,
        document_id TEXT,
        function_code TEXT NOT NULL,
        referenced_message_id TEXT,
        test INTEGER NOT NULL,
        size INTEGER NOT NULL,
        digest TEXT NOT NULL,
        received_at TEXT NOT NULL,
        state TEXT NOT NULL,
        state_at TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until TEXT,
        last_error_code TEXT
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS messages_business_key
        ON messages (sender, document_type, document_id, function_code)
        WHERE document_id IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS messages_received_at ON messages (received_at)",
    "CREATE INDEX IF NOT EXISTS messages_state_at ON messages (state_at)",
    """CREATE TABLE IF NOT EXISTS message_states (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        error_code TEXT,
        detail TEXT,
        attempt INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS message_states_message ON message_states (message_id, seq)",
    """CREATE TABLE IF NOT EXISTS payloads (
        message_id TEXT PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
        body BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS links (
        message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
        related_message_id TEXT NOT NULL,
        relation TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (message_id, related_message_id, relation)
    )""",
    "CREATE INDEX IF NOT EXISTS links_related ON links (related_message_id)",
    """CREATE TABLE IF NOT EXISTS inbox (
        message_id TEXT PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
        receiver TEXT NOT NULL,
        stored_at TEXT NOT NULL,
        lease_until TEXT,
        fetches INTEGER NOT NULL DEFAULT 0,
        acked_at TEXT
    )""",
    """CREATE INDEX IF NOT EXISTS inbox_waiting ON inbox (receiver, stored_at)
        WHERE acked_at IS NULL""",
)

_KNOWN_SQL = KNOWN_SQL.format(p="?")
_CLAIMABLE = claimable_values()
_CLAIMABLE_MARKS = ", ".join("?" for _ in _CLAIMABLE)
_CLAIM_SQL = (
    "UPDATE messages SET state = 'DELIVERING', state_at = ?, lease_until = ?, "  # noqa: S608
    f"attempts = attempts + 1 WHERE message_id = ? AND (state IN ({_CLAIMABLE_MARKS}) "
    "OR (state = 'DELIVERING' AND (lease_until IS NULL OR lease_until <= ?))) "
    "AND (? IS NULL OR digest = ?) RETURNING attempts"
)


def _stamp(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="microseconds")


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(value)


class SqliteJournal:
    """``Journal`` on a SQLite file; open it with ``SqliteJournal.open``."""

    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        """Wrap an open connection; use ``open``, which makes both on the right thread."""
        self._db = connection
        self._executor = executor
        self._closed = False
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._draining = False

    @classmethod
    async def open(cls, path: Path | str, *, synchronous: str = "FULL") -> SqliteJournal:
        """Open (creating if needed) the journal file and bring its schema up to date."""
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(
                executor, functools.partial(_guarded, functools.partial(_connect, str(path), mode))
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(connection, executor)

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Queue one operation; operations queued together commit together (group commit).

        Under load the writer thread takes every operation waiting at that moment and runs
        them in one transaction, each inside its own savepoint: one lock acquisition and one
        fsync for the batch, while each operation still succeeds or fails on its own. Alone,
        an operation is its own transaction, as before.
        """
        if self._closed:
            raise RuntimeError("the journal is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((functools.partial(fn, self._db, *args, **kwargs), future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())  # noqa: RUF006  (it ends when the queue is empty)
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                calls = [call for call, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, functools.partial(_run_batch, self._db, calls)
                    )
                except Exception as exc:  # noqa: BLE001  (the commit failed: nothing was written)
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = False

    async def record_accepted(
        self, entry: MessageRecord, payload: bytes, *, at: datetime
    ) -> AcceptOutcome:
        """See ``Journal.record_accepted``."""
        check_payload(entry, payload)
        return await self._run(_record_accepted, entry, payload, _stamp(at))

    async def transition(
        self,
        message_id: str,
        state: MessageState,
        *,
        at: datetime,
        error_code: str | None = None,
        detail: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """See ``Journal.transition``."""
        check_transition_target(state)
        return await self._run(
            _transition,
            message_id,
            state,
            at=_stamp(at),
            error_code=error_code,
            detail=detail,
            attempt=attempt,
        )

    async def claim_delivery(
        self,
        message_id: str,
        *,
        at: datetime,
        lease: timedelta = DEFAULT_LEASE,
        digest: str | None = None,
    ) -> ClaimResult:
        """See ``Journal.claim_delivery``."""
        if lease <= timedelta(0):
            raise ValueError("a claim's lease must be positive")
        return await self._run(_claim, message_id, _stamp(at), _stamp(at + lease), digest)

    async def mark_delivered(self, message_id: str, *, at: datetime) -> bool:
        """See ``Journal.mark_delivered``."""
        return await self.transition(message_id, MessageState.DELIVERED, at=at)

    async def get(self, message_id: str) -> MessageView | None:
        """See ``Journal.get``."""
        return await self._run(_get, message_id)

    async def payload(self, message_id: str) -> bytes | None:
        """See ``Journal.payload``."""
        return await self._run(_payload, message_id)

    async def link(
        self, message_id: str, related_message_id: str, relation: str, *, at: datetime
    ) -> bool:
        """See ``Journal.link``."""
        return await self._run(_link, message_id, related_message_id, relation, _stamp(at))

    async def find_by_business_key(self, key: BusinessKey) -> MessageSummary | None:
        """See ``Journal.find_by_business_key``."""
        return await self._run(_find_by_business_key, key)

    async def list_messages(
        self,
        *,
        state: MessageState | None = None,
        sender: str | None = None,
        receiver: str | None = None,
        test: bool | None = None,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[MessageSummary]:
        """See ``Journal.list_messages``."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("state", state.value if state is not None else None),
            ("sender", sender),
            ("receiver", receiver),
            ("test", test),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            conditions.append("received_at < ?")
            params.append(_stamp(before))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        query = (
            f"SELECT {SUMMARY_COLUMNS} FROM messages {where} "  # noqa: S608  (fixed fragments)
            "ORDER BY received_at DESC, message_id DESC LIMIT ?"
        )
        return await self._run(_select_summaries, query, (*params, max(0, limit)))

    async def counts(self, *, include_test: bool = False) -> Counts:
        """See ``Journal.counts``."""
        return await self._run(_counts, include_test)

    async def purge_older_than(self, cutoff: datetime) -> int:
        """See ``Journal.purge_older_than``."""
        stamp = _stamp(cutoff)
        purged = 0
        while True:
            batch = await self._run(_purge_batch, stamp)
            purged += batch
            if batch < PURGE_BATCH:
                return purged

    async def inbox_store(self, message_id: str, *, receiver: str, at: datetime) -> bool:
        """See ``InboxJournal.inbox_store``."""
        return await self._run(_inbox_store, message_id, receiver, _stamp(at))

    async def inbox_waiting(
        self, receiver: str, *, at: datetime, limit: int = 100
    ) -> list[InboxItem]:
        """See ``InboxJournal.inbox_waiting``."""
        return await self._run(_inbox_waiting, receiver, at, max(0, limit))

    async def inbox_fetch(
        self, receiver: str, message_id: str, *, at: datetime, lease: timedelta
    ) -> InboxDocument | None:
        """See ``InboxJournal.inbox_fetch``."""
        if lease <= timedelta(0):
            raise ValueError("an inbox lease must be positive")
        return await self._run(_inbox_fetch, receiver, message_id, at, _stamp(at + lease))

    async def inbox_ack(self, receiver: str, message_id: str, *, at: datetime) -> InboxAck:
        """See ``InboxJournal.inbox_ack``."""
        return await self._run(_inbox_ack, receiver, message_id, _stamp(at))

    async def close(self) -> None:
        """See ``Journal.close``."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)


# --- on the journal thread --------------------------------------------------------------------


def _run_batch(db: sqlite3.Connection, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in one transaction; each outcome is its result or the error it raised."""
    if len(calls) == 1:
        try:
            return [_guarded(functools.partial(_patiently, calls[0]))]
        except Exception as exc:  # noqa: BLE001  (handed back to the caller's future)
            return [exc]
    outcomes: list[Any] = []
    _guarded(functools.partial(_begin, db))
    try:
        for call in calls:
            try:
                outcomes.append(_guarded(call))
            except Exception as exc:  # noqa: BLE001  (handed back to the caller's future)
                outcomes.append(exc)
        _guarded(lambda: db.execute("COMMIT"))
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


def _patiently(call: Callable[[], T]) -> T:
    """Run ``call``, again and again while another process holds the lock it needs (<= 10 s).

    A call that met a busy database changed nothing (``_write`` rolls back what it began), so
    running it again is safe.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(LOCK_POLL_SECONDS)


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _begin(db: sqlite3.Connection) -> None:
    """Take the write lock, waiting for another process's transaction to end."""
    _patiently(lambda: db.execute("BEGIN IMMEDIATE"))


def _guarded(call: Callable[[], T]) -> T:
    """Translate SQLite's own failures (locked, I/O, corrupt) into the gateway's error tree."""
    try:
        return call()
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise  # our bug, not an unavailable journal
    except sqlite3.DatabaseError as exc:
        raise JournalUnavailable(f"The SQLite journal failed: {exc}") from exc


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    # No busy handler: ``_patiently`` waits for the lock in finer steps than SQLite's would.
    db = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        _patiently(functools.partial(_configure, db, path, synchronous))
        with _write(db):
            _create_schema(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _configure(db: sqlite3.Connection, path: str, synchronous: str) -> None:
    db.execute("PRAGMA busy_timeout = 0")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalUnavailable(f"The SQLite journal at {path} cannot use WAL mode ({mode}).")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute("PRAGMA foreign_keys = ON")


def _create_schema(db: sqlite3.Connection, path: str) -> None:
    for statement in _DDL:
        db.execute(statement)
    row = db.execute("SELECT max(version) FROM journal_schema").fetchone()
    if row[0] is None:
        db.execute("INSERT INTO journal_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise JournalUnavailable(
            f"The journal at {path} has schema version {row[0]}; this gateway knows "
            f"only up to {SCHEMA_VERSION}. Run the newer gateway or restore a backup."
        )


@contextmanager
def _write(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction holding the lock from the start (no read-then-upgrade races).

    Inside a group commit (``_run_batch``) the operation gets a savepoint instead, so that it
    is undone alone if it fails.
    """
    if db.in_transaction:
        db.execute("SAVEPOINT operation")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK TO operation")
            db.execute("RELEASE operation")
            raise
        db.execute("RELEASE operation")
        return
    _begin(db)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _record_accepted(
    db: sqlite3.Connection, entry: MessageRecord, payload: bytes, at: str
) -> AcceptOutcome:
    with _write(db):
        rows = db.execute(_KNOWN_SQL, known_params(entry)).fetchall()
        known = settle_known(entry, [(r[0], MessageState(r[1]), _when(r[2]), r[3]) for r in rows])
        if known is not None:
            return known
        db.execute(
            f"INSERT INTO messages ({SUMMARY_COLUMNS}) "  # noqa: S608  (fixed fragments)
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL)",
            (*record_values(entry, _stamp), INITIAL_STATES[-1].value, at, at),
        )
        db.executemany(
            "INSERT INTO message_states (message_id, state, at) VALUES (?, ?, ?)",
            [
                (entry.message_id, state.value, _stamp(entry.received_at) if i == 0 else at)
                for i, state in enumerate(INITIAL_STATES)
            ],
        )
        db.execute(
            "INSERT INTO payloads (message_id, body) VALUES (?, ?)", (entry.message_id, payload)
        )
    return AcceptOutcome(
        result=AcceptResult.ACCEPTED,
        message_id=entry.message_id,
        state=INITIAL_STATES[-1],
        accepted_at=_when(at),
    )


def _transition(
    db: sqlite3.Connection,
    message_id: str,
    requested: MessageState,
    *,
    at: str,
    error_code: str | None,
    detail: str | None,
    attempt: int | None,
) -> bool:
    with _write(db):
        row = db.execute(
            "SELECT state, attempts FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"The journal has no message {message_id}.")
        current = MessageState(row[0])
        new = next_state(current, requested)
        if new is current:
            return False
        if attempt is None and new in ATTEMPT_STATES and row[1] > 0:
            attempt = row[1]
        db.execute(
            "UPDATE messages SET state = ?, state_at = ?, lease_until = NULL, "
            "last_error_code = coalesce(?, last_error_code) WHERE message_id = ?",
            (new.value, at, error_code, message_id),
        )
        db.execute(
            "INSERT INTO message_states (message_id, state, at, error_code, detail, attempt) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, new.value, at, error_code, detail, attempt),
        )
    return True


def _claim(
    db: sqlite3.Connection, message_id: str, at: str, lease_until: str, digest: str | None
) -> ClaimResult:
    with _write(db):
        won = db.execute(
            _CLAIM_SQL, (at, lease_until, message_id, *_CLAIMABLE, at, digest, digest)
        ).fetchone()
        if won is not None:
            db.execute(
                "INSERT INTO message_states (message_id, state, at, attempt) VALUES (?, ?, ?, ?)",
                (message_id, MessageState.DELIVERING.value, at, won[0]),
            )
            return ClaimResult.GRANTED
        row = db.execute(
            "SELECT state, digest, lease_until FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
    if row is None:
        return ClaimResult.UNKNOWN
    return refused_claim(
        MessageState(row[0]),
        same_bytes=digest in (None, row[1]),
        lease_over=row[2] is None or row[2] <= at,
    )


def _summary(db: sqlite3.Connection, message_id: str) -> MessageSummary | None:
    row = db.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE message_id = ?",  # noqa: S608
        (message_id,),
    ).fetchone()
    return None if row is None else summary_from_row(row, _when)


def _get(db: sqlite3.Connection, message_id: str) -> MessageView | None:
    # One read transaction, so the timeline and the current state agree (inside a group
    # commit, the batch's transaction already gives that).
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")
    try:
        summary = _summary(db, message_id)
        if summary is None:
            return None
        timeline = db.execute(
            f"SELECT {TIMELINE_COLUMNS} FROM message_states "  # noqa: S608
            "WHERE message_id = ? ORDER BY seq",
            (message_id,),
        ).fetchall()
        links = db.execute(
            f"SELECT {LINK_COLUMNS} FROM links "  # noqa: S608
            "WHERE message_id = ? OR related_message_id = ? ORDER BY at, rowid",
            (message_id, message_id),
        ).fetchall()
    finally:
        if own:
            db.execute("COMMIT")
    return MessageView(
        summary=summary,
        timeline=tuple(
            StateChange(
                state=MessageState(r[0]), at=_when(r[1]), error_code=r[2], detail=r[3], attempt=r[4]
            )
            for r in timeline
        ),
        links=tuple(
            Link(message_id=r[0], related_message_id=r[1], relation=r[2], at=_when(r[3]))
            for r in links
        ),
    )


def _payload(db: sqlite3.Connection, message_id: str) -> bytes | None:
    row = db.execute("SELECT body FROM payloads WHERE message_id = ?", (message_id,)).fetchone()
    return None if row is None else bytes(row[0])


def _link(db: sqlite3.Connection, message_id: str, related: str, relation: str, at: str) -> bool:
    with _write(db):
        known = db.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,)).fetchone()
        if known is None:
            raise NotFound(f"The journal has no message {message_id}.")
        cursor = db.execute(
            "INSERT OR IGNORE INTO links (message_id, related_message_id, relation, at) "
            "VALUES (?, ?, ?, ?)",
            (message_id, related, relation, at),
        )
        return cursor.rowcount == 1


def _find_by_business_key(db: sqlite3.Connection, key: BusinessKey) -> MessageSummary | None:
    row = db.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE sender = ? AND "  # noqa: S608
        "document_type = ? AND document_id = ? AND function_code = ?",
        (key.sender, key.document_type, key.document_id, key.function_code),
    ).fetchone()
    return None if row is None else summary_from_row(row, _when)


def _select_summaries(
    db: sqlite3.Connection, query: str, params: tuple[Any, ...]
) -> list[MessageSummary]:
    return [summary_from_row(row, _when) for row in db.execute(query, params)]


def _counts(db: sqlite3.Connection, include_test: bool) -> Counts:
    where = "" if include_test else "WHERE test = 0"
    rows = db.execute(
        f"SELECT receiver, state, count(*) FROM messages {where} "  # noqa: S608
        "GROUP BY receiver, state ORDER BY receiver, state"
    ).fetchall()
    return Counts(
        rows=tuple(CountRow(receiver=r[0], state=MessageState(r[1]), count=r[2]) for r in rows)
    )


def _purge_batch(db: sqlite3.Connection, cutoff: str) -> int:
    with _write(db):
        ids = [
            row[0]
            for row in db.execute(
                "SELECT message_id FROM messages WHERE state_at < ? LIMIT ?",
                (cutoff, PURGE_BATCH),
            )
        ]
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        for table in ("links", "message_states", "payloads", "messages"):
            db.execute(f"DELETE FROM {table} WHERE message_id IN ({marks})", ids)  # noqa: S608
    return len(ids)


def _inbox_store(db: sqlite3.Connection, message_id: str, receiver: str, at: str) -> bool:
    with _write(db):
        known = db.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,)).fetchone()
        if known is None:
            raise NotFound(f"The journal has no message {message_id}.")
        cursor = db.execute(
            "INSERT OR IGNORE INTO inbox (message_id, receiver, stored_at) VALUES (?, ?, ?)",
            (message_id, receiver, at),
        )
        return cursor.rowcount == 1


def _inbox_waiting(
    db: sqlite3.Connection, receiver: str, at: datetime, limit: int
) -> list[InboxItem]:
    stamp = _stamp(at)
    rows = db.execute(
        f"SELECT {INBOX_COLUMNS} FROM {INBOX_FROM} "  # noqa: S608  (fixed fragments)
        "WHERE i.receiver = ? AND i.acked_at IS NULL "
        "AND (i.lease_until IS NULL OR i.lease_until <= ?) "
        "ORDER BY i.stored_at, i.message_id LIMIT ?",
        (receiver, stamp, limit),
    ).fetchall()
    return [inbox_item(tuple(row), _when, at=at) for row in rows]


def _inbox_fetch(
    db: sqlite3.Connection, receiver: str, message_id: str, at: datetime, lease_until: str
) -> InboxDocument | None:
    with _write(db):
        cursor = db.execute(
            "UPDATE inbox SET lease_until = ?, fetches = fetches + 1 "
            "WHERE message_id = ? AND receiver = ? AND acked_at IS NULL",
            (lease_until, message_id, receiver),
        )
        if cursor.rowcount != 1:
            return None
        row = db.execute(
            f"SELECT {INBOX_COLUMNS}, p.body FROM {INBOX_FROM} "  # noqa: S608
            "JOIN payloads p ON p.message_id = i.message_id WHERE i.message_id = ?",
            (message_id,),
        ).fetchone()
    if row is None:
        return None
    return InboxDocument(item=inbox_item(tuple(row[:-1]), _when, at=at), payload=bytes(row[-1]))


def _inbox_ack(db: sqlite3.Connection, receiver: str, message_id: str, at: str) -> InboxAck:
    with _write(db):
        row = db.execute(
            "SELECT acked_at FROM inbox WHERE message_id = ? AND receiver = ?",
            (message_id, receiver),
        ).fetchone()
        if row is None:
            return InboxAck.UNKNOWN
        if row[0] is not None:
            return InboxAck.ALREADY_ACKED
        db.execute(
            "UPDATE inbox SET acked_at = ?, lease_until = NULL WHERE message_id = ?",
            (at, message_id),
        )
    return InboxAck.ACKED
