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
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from gateway.core import lease
from gateway.core.lease import ClaimResult
from gateway.core.states import INITIAL_STATES, MessageState, next_state
from gateway.errors import JournalUnavailable, NotFound
from gateway.journal import tables
from gateway.journal.contract import (
    DEFAULT_LEASE,
    AcceptOutcome,
    AcceptResult,
    BusinessKey,
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
    inbox_item,
    settle_known,
)
from gateway.journal.schema import (
    ATTEMPT_STATES,
    check_transition_target,
    known_params,
    record_values,
    summary_from_row,
)
from gateway.journal.tables import (
    PURGE_BATCH,
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    inbox,
    links,
    message_states,
    messages,
    param,
    payloads,
)

T = TypeVar("T")

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
BUSY_TIMEOUT_SECONDS = 10.0
LOCK_POLL_SECONDS = 0.0003
FILE_MODE = 0o600
"""Permissions of a journal file this gateway creates (and so of its -wal and -shm files)."""

_SQL = tables.compile_all(
    "sqlite",
    {
        **tables.shared_statements(),
        "insert_message": sa.insert(messages).values(
            tables.values_of(messages, (*RECORD_COLUMNS, "state", "state_at", "accepted_at"))
        ),
        "insert_state": sa.insert(message_states).values(
            tables.values_of(
                message_states, ("message_id", "state", "at", "error_code", "detail", "attempt")
            )
        ),
        "insert_payload": sa.insert(payloads).values(
            tables.values_of(payloads, ("message_id", "body"))
        ),
        "transition": sa.update(messages)
        .where(tables.by_id(messages))
        .values(
            state=param("state", messages.c.state),
            state_at=param("at", messages.c.state_at),
            lease_until=sa.null(),
            last_error_code=sa.func.coalesce(
                param("error_code", messages.c.last_error_code), messages.c.last_error_code
            ),
        ),
        "claim": tables.claim_update().returning(messages.c.attempts),
        "link": sqlite.insert(links)
        .values(tables.values_of(links, ("message_id", "related_message_id", "relation", "at")))
        .on_conflict_do_nothing(),
        "inbox_store": sqlite.insert(inbox)
        .values(tables.values_of(inbox, ("message_id", "receiver", "stored_at")))
        .on_conflict_do_nothing(),
        "inbox_fetch": sa.update(inbox)
        .where(
            tables.by_id(inbox),
            inbox.c.receiver == param("receiver"),
            inbox.c.acked_at.is_(None),
        )
        .values(lease_until=param("lease_until", inbox.c.lease_until), fetches=inbox.c.fetches + 1),
        "inbox_fetched": sa.select(*tables.INBOX_ITEM, payloads.c.body)
        .select_from(tables.INBOX_JOIN.join(payloads, payloads.c.message_id == inbox.c.message_id))
        .where(tables.by_id(inbox)),
        "inbox_ack": sa.update(inbox)
        .where(tables.by_id(inbox))
        .values(acked_at=param("at", inbox.c.acked_at), lease_until=sa.null()),
    },
)
"""Every statement this backend runs, compiled for SQLite once, at import."""

_DDL = tables.ddl("sqlite")


@functools.cache
def _list_sql(filters: frozenset[str]) -> tables.Sql:
    """The listing for one combination of filters, compiled the first time it is asked for."""
    return tables.compile_for("sqlite", tables.list_statement(filters))


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
        given: dict[str, Any] = {
            name: value
            for name, value in (
                ("state", state.value if state is not None else None),
                ("sender", sender),
                ("receiver", receiver),
                ("test", test),
                ("before", _stamp(before) if before is not None else None),
            )
            if value is not None
        }
        query = _list_sql(frozenset(given))
        return await self._run(_select_summaries, query, query.params(**given, limit=max(0, limit)))

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
    _create_private(path)
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


def _create_private(path: str) -> None:
    """Create the journal file readable by its owner only (0600), if it does not exist yet.

    The journal holds every payload. SQLite creates the ``-wal`` and ``-shm`` files beside it
    with the database file's permissions, so they are 0600 too. An existing file keeps the
    mode its operator gave it. (``os.umask`` would do it too, but it is per process, not per
    thread, and other threads create files meanwhile.)
    """
    if path == ":memory:":
        return
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise JournalUnavailable(f"The SQLite journal at {path} cannot be created: {exc}") from exc
    os.close(descriptor)


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
    row = _one(db, "schema_version")
    if row is None or row[0] is None:
        _exec(db, "set_schema_version", version=SCHEMA_VERSION)
    elif row[0] > SCHEMA_VERSION:
        raise JournalUnavailable(
            f"The journal at {path} has schema version {row[0]}; this gateway knows "
            f"only up to {SCHEMA_VERSION}. Run the newer gateway or restore a backup."
        )


def _exec(db: sqlite3.Connection, name: str, /, **given: Any) -> sqlite3.Cursor:
    """Run the statement called ``name`` in ``_SQL`` with its parameters."""
    sql = _SQL[name]
    return db.execute(sql.text, sql.params(**given))


def _one(db: sqlite3.Connection, name: str, /, **given: Any) -> Any:
    """The first row the statement called ``name`` returns, or None."""
    return _exec(db, name, **given).fetchone()


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


def _add_state(
    db: sqlite3.Connection,
    message_id: str,
    state: MessageState,
    at: str,
    *,
    error_code: str | None = None,
    detail: str | None = None,
    attempt: int | None = None,
) -> None:
    """Write one timeline row."""
    _exec(
        db,
        "insert_state",
        message_id=message_id,
        state=state.value,
        at=at,
        error_code=error_code,
        detail=detail,
        attempt=attempt,
    )


def _record_accepted(
    db: sqlite3.Connection, entry: MessageRecord, payload: bytes, at: str
) -> AcceptOutcome:
    with _write(db):
        rows = _exec(db, "known", **known_params(entry)).fetchall()
        known = settle_known(entry, [(r[0], MessageState(r[1]), _when(r[2]), r[3]) for r in rows])
        if known is not None:
            return known
        _exec(
            db,
            "insert_message",
            **record_values(entry, _stamp),
            state=INITIAL_STATES[-1].value,
            state_at=at,
            accepted_at=at,
        )
        for i, state in enumerate(INITIAL_STATES):
            _add_state(db, entry.message_id, state, _stamp(entry.received_at) if i == 0 else at)
        _exec(db, "insert_payload", message_id=entry.message_id, body=payload)
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
        row = _one(db, "state_of", message_id=message_id)
        if row is None:
            raise NotFound(f"The journal has no message {message_id}.")
        current = MessageState(row[0])
        new = next_state(current, requested)
        if new is current:
            return False
        if attempt is None and new in ATTEMPT_STATES and row[1] > 0:
            attempt = row[1]
        _exec(
            db, "transition", message_id=message_id, state=new.value, at=at, error_code=error_code
        )
        _add_state(db, message_id, new, at, error_code=error_code, detail=detail, attempt=attempt)
    return True


def _claim(
    db: sqlite3.Connection, message_id: str, at: str, lease_until: str, digest: str | None
) -> ClaimResult:
    with _write(db):
        won = _one(
            db, "claim", message_id=message_id, at=at, lease_until=lease_until, digest=digest
        )
        if won is not None:
            _add_state(db, message_id, MessageState.DELIVERING, at, attempt=won[0])
            return ClaimResult.GRANTED
        row = _one(db, "claim_look", message_id=message_id)
    # Not granted: the rule the claim statement was written from says why.
    verdict = lease.claim(
        None if row is None else MessageState(row[0]),
        lease_until=None if row is None or row[2] is None else _when(row[2]),
        now=_when(at),
        same_bytes=row is None or digest in (None, row[1]),
    )
    return lease.refused(verdict)  # GRANTED here would mean the statement and the rule disagree


def _summary(db: sqlite3.Connection, message_id: str) -> MessageSummary | None:
    row = _one(db, "summary", message_id=message_id)
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
        timeline = _exec(db, "timeline", message_id=message_id).fetchall()
        found = _exec(db, "links", message_id=message_id).fetchall()
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
            for r in found
        ),
    )


def _payload(db: sqlite3.Connection, message_id: str) -> bytes | None:
    row = _one(db, "payload", message_id=message_id)
    return None if row is None else bytes(row[0])


def _link(db: sqlite3.Connection, message_id: str, related: str, relation: str, at: str) -> bool:
    with _write(db):
        if _one(db, "exists", message_id=message_id) is None:
            raise NotFound(f"The journal has no message {message_id}.")
        cursor = _exec(
            db,
            "link",
            message_id=message_id,
            related_message_id=related,
            relation=relation,
            at=at,
        )
        return cursor.rowcount == 1


def _find_by_business_key(db: sqlite3.Connection, key: BusinessKey) -> MessageSummary | None:
    row = _one(
        db,
        "by_business_key",
        sender=key.sender,
        document_type=key.document_type,
        document_id=key.document_id,
        function_code=key.function_code,
    )
    return None if row is None else summary_from_row(row, _when)


def _select_summaries(
    db: sqlite3.Connection, query: tables.Sql, params: dict[str, Any]
) -> list[MessageSummary]:
    return [summary_from_row(row, _when) for row in db.execute(query.text, params)]


def _counts(db: sqlite3.Connection, include_test: bool) -> Counts:
    rows = _exec(db, "counts" if include_test else "counts_live").fetchall()
    return Counts(
        rows=tuple(CountRow(receiver=r[0], state=MessageState(r[1]), count=r[2]) for r in rows)
    )


def _purge_batch(db: sqlite3.Connection, cutoff: str) -> int:
    # ON DELETE CASCADE (foreign keys are on) takes the timeline, payload, links and inbox row.
    with _write(db):
        return int(_exec(db, "purge", cutoff=cutoff).rowcount)


def _inbox_store(db: sqlite3.Connection, message_id: str, receiver: str, at: str) -> bool:
    with _write(db):
        if _one(db, "exists", message_id=message_id) is None:
            raise NotFound(f"The journal has no message {message_id}.")
        cursor = _exec(db, "inbox_store", message_id=message_id, receiver=receiver, stored_at=at)
        return cursor.rowcount == 1


def _inbox_waiting(
    db: sqlite3.Connection, receiver: str, at: datetime, limit: int
) -> list[InboxItem]:
    rows = _exec(db, "inbox_waiting", receiver=receiver, at=_stamp(at), limit=limit).fetchall()
    return [inbox_item(tuple(row), _when, at=at) for row in rows]


def _inbox_fetch(
    db: sqlite3.Connection, receiver: str, message_id: str, at: datetime, lease_until: str
) -> InboxDocument | None:
    with _write(db):
        cursor = _exec(
            db, "inbox_fetch", message_id=message_id, receiver=receiver, lease_until=lease_until
        )
        if cursor.rowcount != 1:
            return None
        row = _one(db, "inbox_fetched", message_id=message_id)
    if row is None:
        return None
    return InboxDocument(item=inbox_item(tuple(row[:-1]), _when, at=at), payload=bytes(row[-1]))


def _inbox_ack(db: sqlite3.Connection, receiver: str, message_id: str, at: str) -> InboxAck:
    with _write(db):
        row = _one(db, "inbox_ack_look", message_id=message_id, receiver=receiver)
        if row is None:
            return InboxAck.UNKNOWN
        if row[0] is not None:
            return InboxAck.ALREADY_ACKED
        _exec(db, "inbox_ack", message_id=message_id, at=at)
    return InboxAck.ACKED
