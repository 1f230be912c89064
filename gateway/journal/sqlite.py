"""The journal in one SQLite file: the default, nothing to install.

Durability and sharing:

- WAL mode, so readers never wait for the writer and several gateway processes on one host can
  share the file. Every write transaction starts with ``BEGIN IMMEDIATE``, which takes the
  write lock up front: read-then-write decisions (claim, dedupe) cannot interleave.
- A writer that finds another process holding the lock polls for it at a short, fixed interval
  (up to a time limit) instead of using SQLite's busy handler, whose growing sleeps between
  tries often outlast the lock. The measured gain is in ``docs/performance.md``
  (``bench/bench_e2e.py``).
- ``synchronous=FULL`` by default: a commit returns only after the WAL is on disk, so the 202
  the ingest answers survives a power cut. ``NORMAL`` (``?synchronous=normal`` in the URL) skips
  that fsync: still safe against a crashed or killed process, but the last commits can vanish
  if the machine loses power. Choose it knowingly.
- sqlite3 blocks, so every call runs on one dedicated thread (one connection, used only from
  it); the event loop never waits on disk. One thread also serialises this process's writes,
  which SQLite would do anyway.

Faults (issue 14): every SQLite error is a ``JournalUnavailable`` (``journal-read-only``,
``journal-full`` or ``journal-unavailable``), never a 500. Every operation is bounded by
``op_timeout`` (5 s): waiting for another process's lock and waiting for a stalled disk both end
in ``journal-unavailable`` within it. The connection is opened read-write or not at all (never
SQLite's silent fall-back to read-only); after a failure that may have spoiled it (read-only,
I/O error, cannot open) it is closed and reopened read-write as soon as the file is writable
again, so the process heals without a restart. At most every second (and after any failure)
the file at the journal's path is compared with the file opened (device and inode): a journal
deleted or replaced under the gateway refuses every write with ``journal-replaced`` instead of
accepting into a file nobody will read again. ``status()`` says which of these holds.

Timestamps are stored as ISO 8601 text in UTC with microseconds, a fixed width, so text order
is time order and an operator with the ``sqlite3`` shell can read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import sqlite

from gateway.core import lease
from gateway.core.lease import ClaimResult
from gateway.core.registers import RegisterEntry
from gateway.core.states import INITIAL_STATES, MessageState, next_state
from gateway.errors import (
    JournalFull,
    JournalReadOnly,
    JournalReplaced,
    JournalUnavailable,
    NotFound,
)
from gateway.journal import tables
from gateway.journal.contract import (
    DEFAULT_LEASE,
    ESCALATABLE,
    PICKUP_NOT_ACKNOWLEDGED,
    AcceptOutcome,
    AcceptResult,
    AuditEntry,
    CountRow,
    Counts,
    InboxAck,
    InboxDocument,
    InboxItem,
    JournalStatus,
    Link,
    MessageRecord,
    MessageSummary,
    MessageView,
    Outcomes,
    StateChange,
    as_utc,
    audit_entry,
    audit_filters,
    audit_params,
    check_job_name,
    check_payload,
    inbox_item,
    outcomes_from_rows,
    pickup_detail,
    register_entry_from_row,
    register_params,
    settle_known,
)
from gateway.journal.queries import OperatorQueries
from gateway.journal.schema import (
    ATTEMPT_STATES,
    check_transition_target,
    creates_schema,
    known_params,
    list_filters,
    new_journal_id,
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

log = structlog.get_logger("gateway.journal.sqlite")

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
DEFAULT_OP_TIMEOUT_SECONDS = 5.0
"""Longest a journal operation may take (lock waits and disk stalls included) before it fails
with ``journal-unavailable``: well under a client's own timeout."""
BUSY_TIMEOUT_SECONDS = DEFAULT_OP_TIMEOUT_SECONDS
IDENTITY_CHECK_SECONDS = 0.0
"""How often (at most) the journal's path is compared with the file this process has open
before a write: 0, before every group commit that writes (one ``stat`` and two ``access`` calls,
a few microseconds beside the commit's fsync), so that not one write is accepted into a file
that was deleted. Reads never wait for it."""
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
        .values(tables.transition_values(param("state", messages.c.state))),
        "claim": tables.claim_update().returning(messages.c.attempts),
        "link": sqlite.insert(links)
        .values(tables.values_of(links, ("message_id", "related_message_id", "relation", "at")))
        .on_conflict_do_nothing(),
        "register_add": sqlite.insert(tables.register_entries)
        .values(tables.values_of(tables.register_entries, tables.REGISTER_COLUMNS))
        .on_conflict_do_nothing(),
        "inbox_store": sqlite.insert(inbox)
        .values(
            tables.values_of(inbox, ("message_id", "receiver", "stored_at", "retransmission_of"))
        )
        .on_conflict_do_nothing(),
        "inbox_fetch": sa.update(inbox)
        .where(
            tables.by_id(inbox),
            inbox.c.receiver == param("receiver"),
            inbox.c.acked_at.is_(None),
            sa.or_(inbox.c.lease_until.is_(None), inbox.c.lease_until <= param("at")),
        )
        .values(lease_until=param("lease_until", inbox.c.lease_until), fetches=inbox.c.fetches + 1),
        "inbox_fetched": sa.select(*tables.INBOX_ITEM, payloads.c.body)
        .select_from(
            tables.INBOX_JOIN.join(payloads, payloads.c.message_id == tables.INBOX_DOCUMENT)
        )
        .where(tables.by_id(inbox)),
        "inbox_ack": sa.update(inbox)
        .where(tables.by_id(inbox))
        .values(acked_at=param("at", inbox.c.acked_at), lease_until=sa.null()),
    },
)
"""Every statement this backend runs, compiled for SQLite once, at import."""

_DDL = tables.ddl("sqlite")


def _stamp(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="microseconds")


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(value)


class SqliteJournal(OperatorQueries):
    """``Journal`` on a SQLite file; open it with ``SqliteJournal.open``."""

    _dialect = "sqlite"

    def _encode(self, moment: datetime) -> Any:
        return _stamp(moment)

    def _decode(self, value: Any) -> datetime:
        return _when(value)

    async def _select(self, sql: tables.Sql, params: dict[str, Any]) -> list[Any]:
        return await self._read(_select_rows, sql.text, params)

    async def _write_each(self, sql: tables.Sql, rows: list[dict[str, Any]]) -> int:
        return await self._run(_write_rows, sql.text, [sql.params(**row) for row in rows])

    def __init__(
        self,
        connection: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        *,
        path: str = ":memory:",
        synchronous: str = "FULL",
        op_timeout: float = DEFAULT_OP_TIMEOUT_SECONDS,
        identity_check_seconds: float = IDENTITY_CHECK_SECONDS,
    ) -> None:
        """Wrap an open connection; use ``open``, which makes both on the right thread."""
        self._db: sqlite3.Connection | None = connection
        self._executor = executor
        self._closed = False
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any], bool]] = []
        self._draining = False
        self._path = path
        self._synchronous = synchronous
        self._op_timeout = op_timeout
        self._identity_every = identity_check_seconds
        # Touched only on the journal thread:
        self._identity = _identity(path)
        self._checked = time.monotonic()
        self._suspect = False
        self._replaced: JournalReplaced | None = None
        self._status = JournalStatus(state="ok")
        self._jobs: set[str] = set()  # jobs this object runs (all a memory journal knows)

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        op_timeout: float = DEFAULT_OP_TIMEOUT_SECONDS,
    ) -> SqliteJournal:
        """Open (creating if needed) the journal file and bring its schema up to date.

        The file is opened read-write or not at all: a journal that is not writable yet is
        tried again for up to ``op_timeout`` seconds, then refused (``journal-read-only``).
        """
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        if not op_timeout > 0:
            raise ValueError("op_timeout must be positive")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + op_timeout
        connect = functools.partial(_guarded, functools.partial(_connect, str(path), mode))
        try:
            while True:
                try:
                    connection = await loop.run_in_executor(executor, connect)
                    break
                except JournalReadOnly:  # perhaps for a moment: try again, never read-only
                    if time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(0.2)
            journal = cls(
                connection, executor, path=str(path), synchronous=mode, op_timeout=op_timeout
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return journal

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Queue one write; operations queued together commit together (group commit).

        Under load the writer thread takes every operation waiting at that moment and runs
        them in one transaction, each inside its own savepoint: one lock acquisition and one
        fsync for the batch, while each operation still succeeds or fails on its own. Alone,
        an operation is its own transaction, as before.
        """
        return await self._submit(fn, args, kwargs, write=True)

    async def _read(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Queue one read: it still runs when the journal refuses writes (read-only, replaced)."""
        return await self._submit(fn, args, {}, write=False)

    async def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], *, write: bool
    ) -> T:
        if self._closed:
            raise JournalUnavailable("The journal is closed (the gateway is stopping).")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        call = functools.partial(self._call, fn, args, kwargs)
        self._pending.append((call, future, write))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())  # noqa: RUF006  (it ends when the queue is empty)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._op_timeout)
        except TimeoutError:
            future.cancel()  # not run at all if it is still queued; its outcome dropped if not
            log.warning("journal_timeout", timeout_seconds=self._op_timeout)
            raise JournalUnavailable(
                f"The journal did not answer within {self._op_timeout:g} s (its disk may be "
                "stalled, or another process holds it locked); try again shortly."
            ) from None

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """Run ``fn`` on the current connection (on the journal thread)."""
        if self._db is None:
            raise JournalUnavailable(self._status.reason or "The journal is not open.")
        return fn(self._db, *args, **kwargs)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                batch = [entry for entry in batch if not entry[1].done()]  # timed out meanwhile
                if not batch:
                    continue
                calls = [(call, write) for call, _, write in batch]
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, functools.partial(self._on_thread, calls)
                    )
                except Exception as exc:  # noqa: BLE001  (handed to every caller)
                    outcomes = [exc] * len(batch)
                for (_, future, _), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = False

    # --- on the journal thread ---------------------------------------------------------------

    def _on_thread(self, calls: list[tuple[Callable[[], Any], bool]]) -> list[Any]:
        """Check the file is still ours and writable, then run the batch (group commit)."""
        _deadline.at = time.monotonic() + self._op_timeout
        try:
            writes = any(write for _, write in calls)
            refusal = self._inspect() if writes or self._suspect else None
            runnable = [call for call, write in calls if not (write and refusal is not None)]
            ran: list[Any] = []
            if runnable and self._db is None:
                ran = [refusal or JournalUnavailable("The journal is not open.")] * len(runnable)
            elif runnable and self._db is not None:
                try:
                    ran = _run_batch(self._db, runnable)
                except Exception as exc:  # noqa: BLE001  (the commit failed: nothing written)
                    ran = [exc] * len(runnable)
        finally:
            _deadline.at = None
        for outcome in ran:
            if isinstance(outcome, JournalUnavailable) and not _is_busy_error(outcome):
                if not self._suspect:
                    log.warning("journal_failed", error=outcome.code)
                self._suspect = True
                self._status = JournalStatus(state=_state_of(outcome), reason=outcome.detail)
        outcomes: list[Any] = []
        results = iter(ran)
        for _, write in calls:
            outcomes.append(refusal if write and refusal is not None else next(results))
        return outcomes

    def _inspect(self) -> JournalUnavailable | None:
        """Why writes must be refused now, or None; reopens a spoiled connection when it can.

        Runs at most every ``identity_check_seconds``, and on every batch after a failure.
        """
        if self._replaced is not None:
            return self._replaced
        now = time.monotonic()
        if not self._suspect and now - self._checked < self._identity_every:
            return None
        self._checked = now
        problem = self._path_problem()
        if problem is None and self._suspect:
            try:
                self._reopen()
            except JournalUnavailable as exc:
                problem = exc
            else:
                log.info("journal_reopened", outcome="healed")
        if isinstance(problem, JournalReplaced):
            return self._mark_replaced(problem.detail)
        if problem is not None:
            return self._refuse(problem)
        self._suspect = False
        self._status = JournalStatus(state="ok")
        return None

    def _path_problem(self) -> JournalUnavailable | None:
        """What is wrong with the file at the journal's path (gone, another, not writable)."""
        if self._path == ":memory:":
            return None
        try:
            found = _identity(self._path)
        except FileNotFoundError:
            return JournalReplaced("The journal file was deleted while the gateway used it.")
        except OSError as exc:
            return JournalReadOnly(f"The journal file cannot be reached ({exc.strerror}).")
        if found != self._identity:
            return JournalReplaced(
                "The journal file was replaced by another file while the gateway used it."
            )
        folder = os.path.dirname(os.path.abspath(self._path))
        if not (os.access(self._path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
            return JournalReadOnly("The journal file or its folder is not writable at the moment.")
        return None

    def _refuse(self, error: JournalUnavailable) -> JournalUnavailable:
        if self._status.state == "ok":
            log.warning("journal_refusing_writes", error=error.code)
        self._suspect = True  # reopen read-write once it is writable again
        self._status = JournalStatus(state=_state_of(error), reason=error.detail)
        return error

    def _mark_replaced(self, reason: str) -> JournalReplaced:
        log.error("journal_replaced", outcome="refusing-writes")
        self._replaced = JournalReplaced(
            f"{reason} Nothing more is accepted into it; restart the gateway once the journal "
            "file is back (restore it from a backup if it was lost)."
        )
        self._status = JournalStatus(state="replaced", reason=self._replaced.detail)
        return self._replaced

    def _reopen(self) -> None:
        """Close the connection and open the same file read-write again (never create it)."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        db = _guarded(functools.partial(_connect, self._path, self._synchronous, create=False))
        if _identity(self._path) != self._identity:
            db.close()
            raise JournalReplaced("The journal file was replaced while the gateway reopened it.")
        self._db = db

    def _probe(self) -> JournalStatus:
        self._checked = float("-inf")
        self._inspect()
        return self._status

    @asynccontextmanager
    async def job_lock(self, job: str) -> AsyncIterator[bool]:
        """Try for ``job``'s lock: an exclusive ``flock`` on ``<database>.<job>.lock`` beside
        the file, which every worker (process) on this node sees, and which goes when the
        holder exits or dies. A memory journal belongs to one object: the lock is its own."""
        check_job_name(job)
        if job in self._jobs:
            yield False
            return
        fd: int | None = None
        if self._path != ":memory:":
            fd = os.open(f"{self._path}.{job}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = None
                yield False
                return
        self._jobs.add(job)
        try:
            yield True
        finally:
            self._jobs.discard(job)
            if fd is not None:
                os.close(fd)  # releases the flock

    async def status(self) -> JournalStatus:
        """Whether the journal can write now: ok, read-only, replaced or unavailable (+ reason).

        Looks at the file now (and reopens it if it can); a disk that does not answer within
        the operation timeout is ``unavailable``. For readiness checks.
        """
        if self._closed:
            return JournalStatus(state="unavailable", reason="The journal is closed.")
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._probe), self._op_timeout
            )
        except TimeoutError:
            return JournalStatus(
                state="unavailable",
                reason=f"The journal's disk did not answer within {self._op_timeout:g} s.",
            )

    async def healthy(self) -> bool:
        """True when the journal can write now (``status()`` is ok)."""
        status = await self.status()
        return status.ok

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
        return await self._read(_get, message_id)

    async def payload(self, message_id: str) -> bytes | None:
        """See ``Journal.payload``."""
        return await self._read(_payload, message_id)

    async def link(
        self, message_id: str, related_message_id: str, relation: str, *, at: datetime
    ) -> bool:
        """See ``Journal.link``."""
        return await self._run(_link, message_id, related_message_id, relation, _stamp(at))

    async def register_add(self, entry: RegisterEntry, *, at: datetime) -> bool:
        """See ``Journal.register_add``."""
        return await self._run(_register_add, register_params(entry, _stamp(at)))

    async def register_history(
        self, register: str, country: str, record_key: str | None = None
    ) -> list[RegisterEntry]:
        """See ``Journal.register_history``."""
        return await self._read(_register_history, register, country, record_key)

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
        given = list_filters(
            state=state, sender=sender, receiver=receiver, test=test, before=before, stamp=_stamp
        )
        query = tables.list_sql("sqlite", frozenset(given))
        return await self._read(
            _select_summaries, query, query.params(**given, limit=max(0, limit))
        )

    async def counts(self, *, include_test: bool = False) -> Counts:
        """See ``Journal.counts``."""
        return await self._read(_counts, include_test)

    async def purge_older_than(self, cutoff: datetime) -> int:
        """See ``Journal.purge_older_than``."""
        stamp = _stamp(cutoff)
        purged = 0
        while True:
            batch = await self._run(_purge_batch, stamp)
            purged += batch
            if batch < PURGE_BATCH:
                return purged

    async def inbox_store(
        self,
        message_id: str,
        *,
        receiver: str,
        at: datetime,
        retransmission_of: str | None = None,
    ) -> bool:
        """See ``InboxJournal.inbox_store``."""
        return await self._run(_inbox_store, message_id, receiver, _stamp(at), retransmission_of)

    async def inbox_waiting(
        self, receiver: str, *, at: datetime, limit: int = 100
    ) -> list[InboxItem]:
        """See ``InboxJournal.inbox_waiting``."""
        return await self._read(_inbox_waiting, receiver, at, max(0, limit))

    async def inbox_fetch(
        self, receiver: str, message_id: str, *, at: datetime, lease: timedelta
    ) -> InboxDocument | None:
        """See ``InboxJournal.inbox_fetch``."""
        if lease <= timedelta(0):
            raise ValueError("an inbox lease must be positive")
        return await self._run(_inbox_fetch, receiver, message_id, at, _stamp(at + lease))

    async def inbox_escalate(
        self, receiver: str, *, at: datetime, older_than: timedelta
    ) -> list[str]:
        """See ``InboxJournal.inbox_escalate``."""
        if older_than <= timedelta(0):
            raise ValueError("the escalation age must be positive")
        return await self._run(_inbox_escalate, receiver, _stamp(at), _stamp(at - older_than))

    async def inbox_ack(self, receiver: str, message_id: str, *, at: datetime) -> InboxAck:
        """See ``InboxJournal.inbox_ack``."""
        return await self._run(_inbox_ack, receiver, message_id, _stamp(at))

    async def audit_append(self, entry: AuditEntry) -> int:
        """See ``AuditJournal.audit_append``."""
        return await self._run(_audit_append, audit_params(entry, _stamp))

    async def audit_list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """See ``AuditJournal.audit_list``."""
        given = audit_filters(actor=actor, action=action, target=target, before_seq=before_seq)
        query = tables.audit_sql("sqlite", frozenset(given))
        return await self._read(_audit_list, query, query.params(**given, limit=max(0, limit)))

    async def delivery_outcomes(
        self, *, since: datetime, failures: int = 500
    ) -> dict[str, Outcomes]:
        """See ``OutcomeJournal.delivery_outcomes``."""
        return await self._read(_outcomes, _stamp(since), max(0, failures))

    async def close(self) -> None:
        """See ``Journal.close``."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._close_connection), self._op_timeout
            )
        except TimeoutError:
            log.warning("journal_close_timeout", timeout_seconds=self._op_timeout)
            self._executor.shutdown(wait=False)
            return
        self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


# --- on the journal thread --------------------------------------------------------------------


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()
"""When the batch running on this thread must give up waiting for another process's lock."""


def _identity(path: str) -> tuple[int, int]:
    """The device and inode of the file at ``path`` (which file it is, whatever its name)."""
    if path == ":memory:":
        return (0, 0)
    found = os.stat(path)
    return (found.st_dev, found.st_ino)


def _state_of(error: JournalUnavailable) -> str:
    if isinstance(error, JournalReplaced):
        return "replaced"
    if isinstance(error, JournalReadOnly):
        return "read-only"
    return "unavailable"


def _is_busy_error(error: JournalUnavailable) -> bool:
    """A lock held by another process: nothing is wrong with this connection."""
    cause = error.__cause__
    return isinstance(cause, sqlite3.OperationalError) and _busy(cause)


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
    """Run ``call``, again and again while another process holds the lock it needs, until the
    batch's deadline (the operation timeout; ``BUSY_TIMEOUT_SECONDS`` outside a batch).

    A call that met a busy database changed nothing (``_write`` rolls back what it began), so
    running it again is safe.
    """
    deadline = _deadline.at or time.monotonic() + BUSY_TIMEOUT_SECONDS
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
        raise _translated(exc) from exc


def _translated(exc: sqlite3.DatabaseError) -> JournalUnavailable:
    """The gateway's error for one of SQLite's: read-only, full, or unavailable (locked, I/O
    error, cannot open, corrupt...); all 503 and worth retrying."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
    if code == sqlite3.SQLITE_READONLY:
        return JournalReadOnly(f"The SQLite journal cannot be written at the moment: {exc}")
    if code == sqlite3.SQLITE_FULL:
        return JournalFull(f"The disk of the SQLite journal is full: {exc}")
    return JournalUnavailable(f"The SQLite journal failed: {exc}")


def _connect(path: str, synchronous: str, *, create: bool = True) -> sqlite3.Connection:
    """Open the journal read-write (never read-only: SQLite would fall back to it silently)."""
    _check_writable(path, create=create)
    # No busy handler: ``_patiently`` waits for the lock in finer steps than SQLite's would.
    if path == ":memory:":
        db = sqlite3.connect(path, timeout=0, isolation_level=None)
    else:
        uri = f"file:{quote(os.path.abspath(path))}?mode=rw"
        db = sqlite3.connect(uri, timeout=0, isolation_level=None, uri=True)
    try:
        _patiently(functools.partial(_configure, db, path, synchronous))
        with _write(db):
            _create_schema(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _check_writable(path: str, *, create: bool) -> None:
    """Refuse a journal this process cannot write: the file (created 0600 if ``create`` and
    missing) and its ``-wal`` file, if there is one, must open for writing."""
    if create:
        _create_private(path)
    if path == ":memory:":
        return
    for name in (path, f"{path}-wal"):
        try:
            descriptor = os.open(name, os.O_RDWR)
        except FileNotFoundError:
            if name == path:
                raise JournalUnavailable(f"The SQLite journal at {path} is missing.") from None
            continue
        except OSError as exc:
            raise JournalReadOnly(
                f"The SQLite journal at {path} cannot be opened for writing: {exc.strerror}"
            ) from exc
        os.close(descriptor)


def _create_private(path: str) -> None:
    """Create the journal file readable by its owner only (0600), or tighten a wider one.

    The journal holds every payload. SQLite creates the ``-wal`` and ``-shm`` files beside it
    with the database file's permissions, so they are 0600 too. (``os.umask`` would do it
    too, but it is per process, not per thread, and other threads create files meanwhile.)
    """
    if path == ":memory:":
        return
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except PermissionError as exc:
        if os.path.exists(path):  # there, but not writable for this process
            raise JournalReadOnly(
                f"The SQLite journal at {path} cannot be opened for writing: {exc.strerror}"
            ) from exc
        raise JournalUnavailable(f"The SQLite journal at {path} cannot be created: {exc}") from exc
    except OSError as exc:
        raise JournalUnavailable(f"The SQLite journal at {path} cannot be created: {exc}") from exc
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, FILE_MODE)
            log.warning("journal_permissions_tightened", mode="0600")
    finally:
        os.close(descriptor)


def _configure(db: sqlite3.Connection, path: str, synchronous: str) -> None:
    db.execute("PRAGMA busy_timeout = 0")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalUnavailable(f"The SQLite journal at {path} cannot use WAL mode ({mode}).")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute("PRAGMA foreign_keys = ON")


_HAS_SCHEMA = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal_schema'"


def _schema_version(db: sqlite3.Connection) -> int | None:
    """The journal's schema version; None for a file without the journal's tables yet."""
    if db.execute(_HAS_SCHEMA).fetchone() is None:
        return None
    row = _one(db, "schema_version")
    return None if row is None or row[0] is None else int(row[0])


def _create_schema(db: sqlite3.Connection, path: str) -> None:
    fresh = creates_schema(_schema_version(db), f"at {path}")
    for statement in _DDL:  # idempotent; at this version, adds nothing to a journal
        db.execute(statement)
    if fresh:
        _exec(db, "set_schema_version", version=SCHEMA_VERSION, journal_id=new_journal_id())


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
            if _in_transaction(db):  # SQLite ends the transaction itself on some errors (full)
                db.execute("ROLLBACK TO operation")
                db.execute("RELEASE operation")
            raise
        db.execute("RELEASE operation")
        return
    _begin(db)
    try:
        yield
    except BaseException:
        if _in_transaction(db):  # SQLite ends the transaction itself on some errors (full)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _in_transaction(db: sqlite3.Connection) -> bool:
    """Whether a transaction is still open (asked again: SQLite may have ended it)."""
    return db.in_transaction


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


def _select_summaries(
    db: sqlite3.Connection, query: tables.Sql, params: dict[str, Any]
) -> list[MessageSummary]:
    return [summary_from_row(row, _when) for row in db.execute(query.text, params)]


def _select_rows(db: sqlite3.Connection, text: str, params: dict[str, Any]) -> list[Any]:
    return db.execute(text, params).fetchall()


def _write_rows(db: sqlite3.Connection, text: str, rows: list[dict[str, Any]]) -> int:
    touched = 0
    with _write(db):
        for row in rows:
            touched += db.execute(text, row).rowcount
    return touched


def _counts(db: sqlite3.Connection, include_test: bool) -> Counts:
    rows = _exec(db, "counts" if include_test else "counts_live").fetchall()
    return Counts(
        rows=tuple(CountRow(receiver=r[0], state=MessageState(r[1]), count=r[2]) for r in rows)
    )


def _purge_batch(db: sqlite3.Connection, cutoff: str) -> int:
    # ON DELETE CASCADE (foreign keys are on) takes the timeline, payload, links and inbox row.
    with _write(db):
        return int(_exec(db, "purge", cutoff=cutoff).rowcount)


def _inbox_store(
    db: sqlite3.Connection, message_id: str, receiver: str, at: str, retransmission_of: str | None
) -> bool:
    with _write(db):
        if _one(db, "exists", message_id=message_id) is None:
            raise NotFound(f"The journal has no message {message_id}.")
        cursor = _exec(
            db,
            "inbox_store",
            message_id=message_id,
            receiver=receiver,
            stored_at=at,
            retransmission_of=retransmission_of,
        )
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
            db,
            "inbox_fetch",
            message_id=message_id,
            receiver=receiver,
            at=_stamp(at),
            lease_until=lease_until,
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


_ESCALATE_LOOK = (
    "SELECT message_id, fetches FROM inbox WHERE receiver = ? AND acked_at IS NULL "
    "AND fetches > 0 AND stored_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
    "ORDER BY stored_at, message_id"
)


def _inbox_escalate(db: sqlite3.Connection, receiver: str, at: str, cutoff: str) -> list[str]:
    with _write(db):
        rows = db.execute(_ESCALATE_LOOK, (receiver, cutoff, at)).fetchall()
        escalated: list[str] = []
        for message_id, fetches in rows:
            db.execute("DELETE FROM inbox WHERE message_id = ?", (message_id,))
            state = _one(db, "state_of", message_id=message_id)
            if state is None or MessageState(state[0]) not in ESCALATABLE:
                continue
            _transition(
                db,
                message_id,
                MessageState.DEAD,
                at=at,
                error_code=PICKUP_NOT_ACKNOWLEDGED,
                detail=pickup_detail(fetches),
                attempt=None,
            )
            escalated.append(str(message_id))
    return escalated


def _audit_append(db: sqlite3.Connection, params: dict[str, Any]) -> int:
    with _write(db):
        return int(_one(db, "audit_append", **params)[0])


def _audit_list(
    db: sqlite3.Connection, query: tables.Sql, params: dict[str, Any]
) -> list[AuditEntry]:
    return [audit_entry(tuple(row), _when) for row in db.execute(query.text, params)]


def _outcomes(db: sqlite3.Connection, since: str, limit: int) -> dict[str, Outcomes]:
    counts = _exec(db, "outcome_counts", since=since).fetchall()
    failures = _exec(db, "outcome_failures", since=since, limit=limit).fetchall()
    return outcomes_from_rows(counts, failures, _when)


def _register_add(db: sqlite3.Connection, params: dict[str, Any]) -> bool:
    with _write(db):
        if _one(db, "exists", message_id=params["message_id"]) is None:
            raise NotFound(f"The journal has no message {params['message_id']}.")
        return _exec(db, "register_add", **params).rowcount == 1


def _register_history(
    db: sqlite3.Connection, register: str, country: str, record_key: str | None
) -> list[RegisterEntry]:
    if record_key is None:
        rows = _exec(db, "register_history", register=register, country=country)
    else:
        rows = _exec(
            db, "register_record", register=register, country=country, record_key=record_key
        )
    return [register_entry_from_row(row, _when) for row in rows.fetchall()]
