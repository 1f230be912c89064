"""The journal in PostgreSQL, for several gateway processes or nodes sharing the work.

psycopg 3 (async) over a small connection pool (psycopg_pool), at READ COMMITTED. The
decisions that must hold across nodes are made by the database itself:

- dedupe: one ``INSERT ... ON CONFLICT DO NOTHING`` statement that writes the message, its
  first timeline rows and the payload, or nothing if the message id or the business key is
  taken; then one read settles who holds them (``settle_known``).
- claim: one conditional ``UPDATE ... RETURNING`` with its timeline row in the same statement.
  A concurrent claimer waits for the row lock, re-checks the condition against the committed
  row and finds it taken.
- transition: compare and set in one statement. The state table lives in Python; for each
  requested state it is turned into an ``UPDATE`` that moves the row only from the states the
  table lets it leave, with a ``CASE`` naming where each goes. Only when nothing moved does a
  read tell a no-op from a forbidden move or an unknown message.

The hot-path writes are single statements in autocommit, so each costs one round trip and one
commit; the driver prepares them after a few uses.

Faults (issue 14): every driver error (connection lost, server shutting down, read-only
transaction as after a fail-over, serialization failure, deadlock, disk full, pool exhausted,
statement timeout) is translated at one seam (``_translated``) into ``JournalUnavailable`` or
one of its clearer subclasses (``journal-read-only``, ``journal-full``): 503, retryable, never a
500. A connection that met a read-only transaction is closed, not given back, so the gateway
heals by itself once the primary is writable again. Every operation is bounded by
``op_timeout`` (5 s): the pool wait and the statements together (``_deadline``: a hard one, a
stalled server cannot stretch it), and each
statement on the server too (``statement_timeout``).

Tables live in the connection's ``search_path`` (the tests give each run its own schema with
``options=-csearch_path=...`` in the URL). Creating them is idempotent and guarded by an
advisory lock, so several processes may start at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
import psycopg_pool.base
import sqlalchemy as sa
import structlog
from psycopg.pq import TransactionStatus
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement

from gateway.core import lease as lease_rule
from gateway.core.lease import ClaimResult
from gateway.core.registers import RegisterEntry
from gateway.core.states import INITIAL_STATES, InvalidTransition, MessageState, next_state
from gateway.errors import JournalFull, JournalReadOnly, JournalUnavailable, NotFound
from gateway.journal import pipeline, tables
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
from gateway.journal.group_commit import GroupCommit, Row, Write
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

# psycopg_pool doubles its wait between reconnection attempts (1, 2, 4, 8 s, ...), so after an
# outage of 15 s the journal could stay unavailable for as long again once PostgreSQL is back. A
# journal tries again every second instead: an attempt against a server that is down costs one
# refused connection.
psycopg_pool.base.AttemptWithBackoff.DELAY_BACKOFF = 1.0

log = structlog.get_logger("gateway.journal.postgres")

DEFAULT_OP_TIMEOUT_SECONDS = 5.0
"""Longest a journal operation may take (pool wait and statements) before it fails with
``journal-unavailable``: well under a client's own timeout."""

POOL_PARAMETERS = ("pool_min_size", "pool_max_size")
GROUP_PARAMETERS = ("group_commit", "group_window_ms", "group_flushers")
"""URL query parameters the journal reads itself and does not pass to libpq: the pool's size,
and group commit (``group_commit=off`` turns it off; the window in ms, default 0.5; the number
of batches in flight at once, default 3)."""

SCHEMA_LOCK = 0x4A4F55524E414C  # "JOURNAL": pg_advisory_xact_lock key for schema creation

_ROUNDS = 20
"""Compare-and-set attempts before giving up; contention on one message is a handful."""


def _accept_statement() -> ClauseElement:
    """The message, its first two timeline rows (in order) and the payload in one statement,
    or nothing at all if the message id or the business key is taken."""
    m = (
        postgresql.insert(messages)
        .values(tables.values_of(messages, (*RECORD_COLUMNS, "state", "state_at", "accepted_at")))
        .on_conflict_do_nothing()
        .returning(messages.c.message_id)
        .cte("m")
    )
    first, second = INITIAL_STATES
    v = sa.values(
        sa.column("ord", sa.Integer),
        sa.column("state", sa.Text),
        sa.column("at", messages.c.received_at.type),
        name="v",
    ).data(
        [
            (1, first.value, param("received_at", messages.c.received_at)),
            (2, second.value, param("accepted_at", messages.c.accepted_at)),
        ]
    )
    s = (
        sa.insert(message_states)
        .from_select(
            ["message_id", "state", "at"],
            sa.select(m.c.message_id, v.c.state, v.c.at)
            .select_from(m.join(v, sa.true()))
            .order_by(v.c.ord),
        )
        .cte("s")
    )
    p = (
        sa.insert(payloads)
        .from_select(
            ["message_id", "body"],
            sa.select(m.c.message_id, param("body", payloads.c.body)).select_from(m),
        )
        .cte("p")
    )
    return sa.select(sa.func.count()).select_from(m).add_cte(s, p)


def _transition_statement(requested: MessageState) -> sa.Insert | None:
    """The one-statement transition towards ``requested``, written from the state table.

    A ``CASE`` maps each state that really moves (``next_state``) to the state it moves to,
    and the UPDATE touches the row only in one of those states, so the SQL decides nothing the
    table does not say. The timeline row carries the attempt number given, else the row's
    attempts for a row that closes an attempt. None where nothing ever moves (RECEIVED).
    """
    moves: dict[str, str] = {}
    for current in MessageState:
        try:
            new = next_state(current, requested)
        except InvalidTransition:
            continue
        if new is not current:
            moves[current.value] = new.value
    if not moves:
        return None
    u = (
        sa.update(messages)
        .where(
            tables.by_id(messages),
            tables.states_in(messages.c.state, (MessageState(v) for v in moves)),
        )
        .values(
            tables.transition_values(
                sa.case(
                    {old: tables.const(new) for old, new in sorted(moves.items())},
                    value=messages.c.state,
                )
            )
        )
        .returning(messages.c.message_id, messages.c.state, messages.c.attempts)
        .cte("u")
    )
    closes_attempt = sa.and_(tables.states_in(u.c.state, ATTEMPT_STATES), u.c.attempts > 0)
    return (
        sa.insert(message_states)
        .from_select(
            ["message_id", "state", "at", "error_code", "detail", "attempt"],
            sa.select(
                u.c.message_id,
                u.c.state,
                param("at", message_states.c.at),
                param("error_code", message_states.c.error_code),
                param("detail", message_states.c.detail),
                sa.func.coalesce(
                    param("attempt", message_states.c.attempt),
                    sa.case((closes_attempt, u.c.attempts)),
                ),
            ),
        )
        .returning(message_states.c.message_id)
        .add_cte(u)
    )


def _claim_statement() -> ClauseElement:
    """The conditional claim UPDATE and its timeline row, committed together."""
    won = tables.claim_update().returning(messages.c.message_id, messages.c.attempts).cte("won")
    row = (
        sa.insert(message_states)
        .from_select(
            ["message_id", "state", "at", "attempt"],
            sa.select(
                won.c.message_id,
                tables.const(MessageState.DELIVERING.value),
                param("at", message_states.c.at),
                won.c.attempts,
            ),
        )
        .cte("row")
    )
    return sa.select(won.c.attempts).add_cte(row)


def _link_statement() -> ClauseElement:
    """The link if its message exists, and whether each was there, in one round trip."""
    m = sa.select(messages.c.message_id).where(tables.by_id(messages)).cte("m")
    i = (
        postgresql.insert(links)
        .from_select(
            ["message_id", "related_message_id", "relation", "at"],
            sa.select(
                m.c.message_id,
                param("related_message_id", links.c.related_message_id),
                param("relation", links.c.relation),
                param("at", links.c.at),
            ),
        )
        .on_conflict_do_nothing()
        .returning(links.c.message_id)
        .cte("i")
    )
    return sa.select(sa.exists().select_from(m), sa.exists().select_from(i))


def _json_rows(
    columns: tuple[sa.ColumnElement[Any], ...],
    order_by: tuple[sa.ColumnElement[Any], ...],
    where: sa.ColumnElement[bool],
) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the rows of ``columns`` as one JSON array of arrays, in order
    (an empty array where there are none)."""
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.json_agg(
                    postgresql.aggregate_order_by(sa.func.json_build_array(*columns), *order_by)
                ),
                sa.literal_column("'[]'::json"),
            )
        )
        .where(where)
        .scalar_subquery()
    )


def _view_statement() -> ClauseElement:
    """A message's summary, timeline and links in one statement (``get``)."""
    timeline = _json_rows(
        tables.TIMELINE,
        (message_states.c.seq,),
        message_states.c.message_id == messages.c.message_id,
    )
    related = _json_rows(
        tables.LINK,
        (links.c.at, links.c.seq),
        sa.or_(
            links.c.message_id == messages.c.message_id,
            links.c.related_message_id == messages.c.message_id,
        ),
    )
    return sa.select(*tables.SUMMARY, timeline, related).where(tables.by_id(messages))


def _inbox_fetch_statement() -> ClauseElement:
    """Take the lease and read the row and the bytes it now holds, in one statement."""
    i = (
        sa.update(inbox)
        .where(
            tables.by_id(inbox),
            inbox.c.receiver == param("receiver"),
            inbox.c.acked_at.is_(None),
            sa.or_(
                inbox.c.lease_until.is_(None),
                inbox.c.lease_until <= param("at", inbox.c.lease_until),
            ),
        )
        .values(lease_until=param("lease_until", inbox.c.lease_until), fetches=inbox.c.fetches + 1)
        .returning(
            inbox.c.message_id,
            inbox.c.receiver,
            inbox.c.stored_at,
            inbox.c.fetches,
            inbox.c.lease_until,
            inbox.c.acked_at,
            inbox.c.retransmission_of,
        )
        .cte("i")
    )
    document = sa.func.coalesce(i.c.retransmission_of, i.c.message_id)
    return sa.select(
        i.c.message_id,
        i.c.receiver,
        messages.c.sender,
        messages.c.document_type,
        messages.c.size,
        i.c.stored_at,
        i.c.fetches,
        i.c.lease_until,
        i.c.acked_at,
        i.c.retransmission_of,
        payloads.c.body,
    ).select_from(
        i.join(messages, messages.c.message_id == document).join(
            payloads, payloads.c.message_id == document
        )
    )


_SQL = tables.compile_all(
    "postgresql",
    {
        **tables.shared_statements(),
        "accept": _accept_statement(),
        "claim": _claim_statement(),
        "view": _view_statement(),
        "link": _link_statement(),
        "register_add": postgresql.insert(tables.register_entries)
        .values(tables.values_of(tables.register_entries, tables.REGISTER_COLUMNS))
        .on_conflict_do_nothing(),
        "inbox_store": postgresql.insert(inbox)
        .from_select(
            ["message_id", "receiver", "stored_at", "retransmission_of"],
            sa.select(
                messages.c.message_id,
                param("receiver", inbox.c.receiver),
                param("stored_at", inbox.c.stored_at),
                param("retransmission_of", inbox.c.retransmission_of),
            ).where(tables.by_id(messages)),
        )
        .on_conflict_do_nothing()
        .returning(inbox.c.message_id),
        "inbox_fetch": _inbox_fetch_statement(),
        "inbox_ack": sa.update(inbox)
        .where(
            tables.by_id(inbox), inbox.c.receiver == param("receiver"), inbox.c.acked_at.is_(None)
        )
        .values(acked_at=param("at", inbox.c.acked_at), lease_until=sa.null())
        .returning(inbox.c.message_id),
    },
)
"""Every statement this backend runs but the transitions, compiled for PostgreSQL at import."""

_TRANSITIONS: dict[MessageState, tables.Sql | None] = {
    state: None
    if (statement := _transition_statement(state)) is None
    else tables.compile_for("postgresql", statement)
    for state in MessageState
}
"""The transition statement towards each state, compiled at import."""

_DDL = tables.ddl("postgresql")


def _when(value: Any) -> datetime:
    return as_utc(value)


def _from_json(value: str) -> datetime:
    """A timestamp as PostgreSQL writes it in JSON (ISO 8601 with its offset)."""
    return as_utc(datetime.fromisoformat(value))


async def _execute(cur: psycopg.AsyncCursor[Any], sql: tables.Sql, /, **given: Any) -> None:
    """Run a compiled statement with its parameters on ``cur``."""
    await cur.execute(sql.text, sql.params(**given))


CANCEL_GRACE_SECONDS = 0.25
"""How long psycopg may take to cancel a query once the operation timeout has expired."""


@asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    """``asyncio.timeout(seconds)``, made hard against a stalled server.

    psycopg answers the timeout's cancellation by asking the server to cancel the query and
    waiting for that, up to 2 x 5 s, which a frozen server never answers: the caller would wait
    for the freeze. A second cancellation ``CANCEL_GRACE_SECONDS`` later makes psycopg close the
    connection instead (the pool replaces it), and the caller gets its ``TimeoutError``.
    """
    task = asyncio.current_task()
    if task is None:  # pragma: no cover  (always called from a task)
        raise RuntimeError("a journal operation outside a task")
    again = False

    def cancel_again() -> None:
        nonlocal again
        again = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds + CANCEL_GRACE_SECONDS, cancel_again)
    try:
        async with asyncio.timeout(seconds):
            yield
    except asyncio.CancelledError:
        if not again:
            raise
        task.uncancel()
        raise TimeoutError from None
    finally:
        handle.cancel()


def _translated(exc: BaseException, timeout: float) -> JournalUnavailable:
    """The gateway's error for a driver failure: the one seam where they are translated."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return JournalReadOnly(
            "The PostgreSQL journal is read-only at the moment (a standby, or a fail-over in "
            "progress); nothing was written."
        )
    if isinstance(exc, psycopg.errors.DiskFull | psycopg.errors.OutOfMemory):
        return JournalFull(f"The PostgreSQL journal's storage is full: {_first_line(exc)}")
    if isinstance(exc, TimeoutError | psycopg.errors.QueryCanceled):
        return JournalUnavailable(
            f"The PostgreSQL journal did not answer within {timeout:g} s; try again shortly."
        )
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return JournalUnavailable(f"The PostgreSQL journal cannot be reached: {_first_line(exc)}")
    return JournalUnavailable(
        f"The PostgreSQL journal failed ({type(exc).__name__}): {_first_line(exc)}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_FAILURES = (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError)
"""What ``_translated`` turns into ``JournalUnavailable``: every driver error class."""


async def _drop(conn: psycopg.AsyncConnection[Any]) -> None:
    """Close a connection that saw a read-only transaction: the pool replaces it with a fresh
    one, which reaches the writable primary once there is one again."""
    log.warning("journal_connection_dropped", reason="read-only")
    with contextlib.suppress(psycopg.Error):
        await conn.close()


async def _compress_payloads(cur: psycopg.AsyncCursor[Any]) -> None:
    """Compress new payloads with lz4 instead of PostgreSQL's default pglz.

    Every accept writes its payload (a few KB of XML, compressed when over 2 KB); pglz took
    about half of the accept statement's time on the server, lz4 a fraction of that
    (docs/performance.md). A storage setting, not a schema change: rows written before keep
    their pglz bytes and read as before. Set once (the first open finds it set); a server
    older than 14, or built without lz4, keeps pglz.
    """
    if cur.connection.info.server_version < 140000:
        return
    await cur.execute(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'payloads'::regclass AND attname = 'body'"
    )
    row = await cur.fetchone()
    if row is None or row[0] == "l":
        return
    try:
        async with cur.connection.transaction():  # a savepoint: refused without lz4
            await cur.execute("ALTER TABLE payloads ALTER COLUMN body SET COMPRESSION lz4")
    except psycopg.errors.FeatureNotSupported:
        log.info("journal_payloads_pglz", reason="the server has no lz4")


_JOB_LOCK = (
    "SELECT pg_try_advisory_lock(hashtextextended("
    "%(job)s || coalesce((SELECT max(journal_id) FROM journal_schema), ''), 0))"
)
"""Take a job's lock if free; the key is a job's name with the journal's identity."""

_ESCALATE_LOOK = (
    "SELECT message_id, fetches FROM inbox WHERE receiver = %(receiver)s AND acked_at IS NULL "
    "AND fetches > 0 AND stored_at <= %(cutoff)s "
    "AND (lease_until IS NULL OR lease_until <= %(at)s) "
    "ORDER BY stored_at, message_id FOR UPDATE SKIP LOCKED"
)


class PostgresJournal(OperatorQueries):
    """``Journal`` on PostgreSQL; open it with ``PostgresJournal.open``."""

    _dialect = "postgresql"

    def _encode(self, moment: datetime) -> Any:
        return as_utc(moment)

    def _decode(self, value: Any) -> datetime:
        return _when(value)

    async def _select(self, sql: tables.Sql, params: dict[str, Any]) -> list[Any]:
        async with self._connection() as cur:
            await cur.execute(sql.text, params)
            return list(await cur.fetchall())

    async def _write_each(self, sql: tables.Sql, rows: list[dict[str, Any]]) -> int:
        touched = 0
        async with self._transaction() as cur:
            for row in rows:
                await cur.execute(sql.text, sql.params(**row))
                touched += max(0, cur.rowcount)
        return touched

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[Any],
        *,
        op_timeout: float = DEFAULT_OP_TIMEOUT_SECONDS,
        group: GroupSettings | None = None,
    ) -> None:
        """Wrap an open pool; use ``open``, which also creates the schema."""
        self._pool = pool
        self._op_timeout = op_timeout
        # Two of the pool's connections stay for the multi-statement transactions (reads).
        self._lender = _Lender(pool, limit=max(1, pool.max_size - 2))
        group = group or GroupSettings()
        self._group: GroupCommit | None = (
            GroupCommit(
                _Batches(self),
                window=group.window_ms / 1000,
                flushers=min(group.flushers, max(1, pool.max_size - 2)),
            )
            if group.enabled
            else None
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_timeout: float = 10.0,
        op_timeout: float = DEFAULT_OP_TIMEOUT_SECONDS,
    ) -> PostgresJournal:
        """Connect to ``url`` (``postgresql://...``) and bring the schema up to date.

        ``pool_min_size`` and ``pool_max_size`` in the query string size the pool (1 and 10).
        ``op_timeout`` bounds every later operation (pool wait and statements).
        """
        if not op_timeout > 0:
            raise ValueError("op_timeout must be positive")
        conninfo, sizes, group = split_url(url)
        statement_ms = max(1, round(op_timeout * 1000))

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            # The server gives up on a statement the client would have stopped waiting for.
            await conn.execute(f"SET statement_timeout = {statement_ms}")

        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            conninfo,
            min_size=sizes.get("pool_min_size", 1),
            max_size=sizes.get("pool_max_size", 10),
            kwargs={"autocommit": True, "connect_timeout": max(2, round(op_timeout))},
            configure=configure,
            timeout=op_timeout,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
            journal = cls(pool, op_timeout=op_timeout, group=group)
            await journal._create_schema()
        except psycopg_pool.PoolTimeout as exc:
            await pool.close()
            raise JournalUnavailable(f"The PostgreSQL journal cannot be reached: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        return journal

    @property
    def group_commit(self) -> GroupCommit | None:
        """The group commit of the hot-path writes (None when the URL turned it off)."""
        return self._group

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """One transaction on a pooled connection, bounded, with driver failures translated."""
        try:
            async with _deadline(self._op_timeout), self._pool.connection() as conn:
                try:
                    async with conn.transaction():
                        yield conn.cursor()
                except psycopg.errors.ReadOnlySqlTransaction:
                    await _drop(conn)
                    raise
        except _FAILURES as exc:
            raise _translated(exc, self._op_timeout) from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A connection in autocommit (each statement its own transaction), lent by ``_Lender``;
        bounded, with driver failures translated."""
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            try:
                async with _deadline(self._op_timeout):
                    conn = await self._lender.lend()
                    yield conn.cursor()
            except psycopg.errors.ReadOnlySqlTransaction:
                if conn is not None:
                    await _drop(conn)
                raise
            finally:
                if conn is not None:
                    await self._lender.give_back(conn)  # checks it is fit to lend on
        except _FAILURES as exc:
            raise _translated(exc, self._op_timeout) from exc

    async def _grouped(self, key: str, sql: tables.Sql, params: dict[str, Any]) -> Row:
        """Run one hot-path write statement, in a group commit unless that is off, bounded by
        the operation timeout; its first row (None if it returned none) once committed."""
        if self._group is None:
            return await self._alone(sql.text, params)
        try:
            async with asyncio.timeout(self._op_timeout):
                return await self._group.write(key, sql.text, params)
        except TimeoutError as exc:
            raise _translated(exc, self._op_timeout) from exc

    async def _alone(self, text: str, params: dict[str, Any]) -> Row:
        """Run one statement in autocommit; its first row."""
        async with self._connection() as cur:
            await cur.execute(text, params)
            row: Row = await cur.fetchone()
        return row

    async def _create_schema(self) -> None:
        async with self._transaction() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            await cur.execute("SELECT to_regclass('journal_schema') IS NOT NULL")
            exists = await cur.fetchone()
            current = None
            if exists is not None and exists[0]:
                await _execute(cur, _SQL["schema_version"])
                row = await cur.fetchone()
                current = None if row is None or row[0] is None else int(row[0])
            fresh = creates_schema(current, "in PostgreSQL")
            for statement in _DDL:  # idempotent; at this version, adds nothing to a journal
                await cur.execute(statement)
            await _compress_payloads(cur)
            if fresh:
                await _execute(
                    cur,
                    _SQL["set_schema_version"],
                    version=SCHEMA_VERSION,
                    journal_id=new_journal_id(),
                )

    async def record_accepted(
        self, entry: MessageRecord, payload: bytes, *, at: datetime
    ) -> AcceptOutcome:
        """See ``Journal.record_accepted``."""
        check_payload(entry, payload)
        at = as_utc(at)
        accept = _SQL["accept"]
        params = accept.params(
            **record_values(entry, as_utc),
            state=INITIAL_STATES[-1].value,
            state_at=at,
            accepted_at=at,
            body=payload,
        )
        # The insert goes in a group commit; only when it wrote nothing does a read settle who
        # holds the id or the key. A few rounds at most: when the insert meets a row that is
        # gone by the time we read (purged), try again.
        inserted = await self._grouped(entry.message_id, accept, params)
        for _ in range(_ROUNDS):
            if inserted is not None and inserted[0] == 1:
                return AcceptOutcome(
                    result=AcceptResult.ACCEPTED,
                    message_id=entry.message_id,
                    state=INITIAL_STATES[-1],
                    accepted_at=at,
                )
            async with self._connection() as cur:
                await _execute(cur, _SQL["known"], **known_params(entry))
                rows = await cur.fetchall()
                known = settle_known(
                    entry, [(r[0], MessageState(r[1]), _when(r[2]), r[3]) for r in rows]
                )
                if known is not None:
                    return known
                await cur.execute(accept.text, params)
                inserted = await cur.fetchone()
        raise JournalUnavailable(
            f"The journal could not settle message {entry.message_id} against concurrent writers."
        )

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
        at = as_utc(at)
        move = _TRANSITIONS[state]
        given = (
            None
            if move is None
            else move.params(
                message_id=message_id, at=at, error_code=error_code, detail=detail, attempt=attempt
            )
        )
        # Compare and set in one statement (in a group commit): the UPDATE moves the row only
        # from a state the table lets it leave for ``state`` (PostgreSQL re-checks that
        # condition against a row a concurrent writer just changed). When nothing moved, read
        # the state to tell a no-op, a forbidden move and an unknown message apart, or to try
        # again. The read goes with a group commit's batch too (a late QUEUED, after the
        # worker's claim, is common under load).
        look = _SQL["state_of"]
        looking = look.params(message_id=message_id)
        for _ in range(_ROUNDS):
            if (
                move is not None
                and given is not None
                and await self._grouped(message_id, move, given) is not None
            ):
                return True
            row = await self._grouped(message_id, look, looking)
            if row is None:
                raise NotFound(f"The journal has no message {message_id}.")
            current = MessageState(row[0])
            if next_state(current, state) is current:
                return False
        raise JournalUnavailable(
            f"The journal could not settle message {message_id} against concurrent writers."
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
        at = as_utc(at)
        claim = _SQL["claim"]
        given = claim.params(message_id=message_id, at=at, lease_until=at + lease, digest=digest)
        if await self._grouped(message_id, claim, given) is not None:
            return ClaimResult.GRANTED
        look = _SQL["claim_look"]
        row = await self._grouped(message_id, look, look.params(message_id=message_id))
        # Not granted: the rule the claim statement was written from says why.
        verdict = lease_rule.claim(
            None if row is None else MessageState(row[0]),
            lease_until=None if row is None or row[2] is None else _when(row[2]),
            now=at,
            same_bytes=row is None or digest in (None, row[1]),
        )
        return lease_rule.refused(verdict)  # GRANTED here: the row moved since, so BUSY

    async def mark_delivered(self, message_id: str, *, at: datetime) -> bool:
        """See ``Journal.mark_delivered``."""
        return await self.transition(message_id, MessageState.DELIVERED, at=at)

    async def get(self, message_id: str) -> MessageView | None:
        """See ``Journal.get``."""
        # One statement (one snapshot, so the timeline and the state agree): the summary, with
        # the timeline and the links as JSON arrays. It travels with the next group commit's
        # batch, which saves it a round trip of its own under load.
        view = _SQL["view"]
        row = await self._grouped(message_id, view, view.params(message_id=message_id))
        if row is None:
            return None
        return MessageView(
            summary=summary_from_row(row, _when),
            timeline=tuple(
                StateChange(
                    state=MessageState(r[0]),
                    at=_from_json(r[1]),
                    error_code=r[2],
                    detail=r[3],
                    attempt=r[4],
                )
                for r in row[-2]
            ),
            links=tuple(
                Link(message_id=r[0], related_message_id=r[1], relation=r[2], at=_from_json(r[3]))
                for r in row[-1]
            ),
        )

    async def payload(self, message_id: str) -> bytes | None:
        """See ``Journal.payload``."""
        async with self._connection() as cur:  # one statement: no BEGIN/COMMIT round trips
            await _execute(cur, _SQL["payload"], message_id=message_id)
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def link(
        self, message_id: str, related_message_id: str, relation: str, *, at: datetime
    ) -> bool:
        """See ``Journal.link``."""
        link = _SQL["link"]
        given = link.params(
            message_id=message_id,
            related_message_id=related_message_id,
            relation=relation,
            at=as_utc(at),
        )
        row = await self._grouped(message_id, link, given)  # one statement, in a group commit
        if row is None or not row[0]:
            raise NotFound(f"The journal has no message {message_id}.")
        return bool(row[1])

    async def register_add(self, entry: RegisterEntry, *, at: datetime) -> bool:
        """See ``Journal.register_add``."""
        async with self._transaction() as cur:
            await _execute(cur, _SQL["exists"], message_id=entry.message_id)
            if await cur.fetchone() is None:
                raise NotFound(f"The journal has no message {entry.message_id}.")
            await _execute(cur, _SQL["register_add"], **register_params(entry, as_utc(at)))
            return cur.rowcount == 1

    async def register_history(
        self, register: str, country: str, record_key: str | None = None
    ) -> list[RegisterEntry]:
        """See ``Journal.register_history``."""
        async with self._connection() as cur:
            if record_key is None:
                await _execute(cur, _SQL["register_history"], register=register, country=country)
            else:
                await _execute(
                    cur,
                    _SQL["register_record"],
                    register=register,
                    country=country,
                    record_key=record_key,
                )
            rows = await cur.fetchall()
        return [register_entry_from_row(row, _when) for row in rows]

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
            state=state, sender=sender, receiver=receiver, test=test, before=before, stamp=as_utc
        )
        query = tables.list_sql("postgresql", frozenset(given))
        async with self._transaction() as cur:
            await _execute(cur, query, **given, limit=max(0, limit))
            rows = await cur.fetchall()
        return [summary_from_row(row, _when) for row in rows]

    async def counts(self, *, include_test: bool = False) -> Counts:
        """See ``Journal.counts``."""
        async with self._transaction() as cur:
            await _execute(cur, _SQL["counts" if include_test else "counts_live"])
            rows = await cur.fetchall()
        return Counts(
            rows=tuple(
                CountRow(receiver=r[0], state=MessageState(r[1]), count=int(r[2])) for r in rows
            )
        )

    async def purge_older_than(self, cutoff: datetime) -> int:
        """See ``Journal.purge_older_than``."""
        cutoff = as_utc(cutoff)
        purged = 0
        while True:
            async with self._transaction() as cur:
                # SKIP LOCKED: a message some worker is moving right now is left for next time.
                # ON DELETE CASCADE takes the timeline, payload, links and inbox row along.
                await _execute(cur, _SQL["purge"], cutoff=cutoff)
                batch = cur.rowcount
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
        store = _SQL["inbox_store"]
        given = store.params(
            message_id=message_id,
            receiver=receiver,
            stored_at=as_utc(at),
            retransmission_of=retransmission_of,
        )
        if await self._grouped(message_id, store, given) is not None:
            return True
        async with self._connection() as cur:
            await _execute(cur, _SQL["exists"], message_id=message_id)
            if await cur.fetchone() is None:
                raise NotFound(f"The journal has no message {message_id}.")
        return False

    async def inbox_waiting(
        self, receiver: str, *, at: datetime, limit: int = 100
    ) -> list[InboxItem]:
        """See ``InboxJournal.inbox_waiting``."""
        at = as_utc(at)
        async with self._connection() as cur:
            await _execute(
                cur, _SQL["inbox_waiting"], receiver=receiver, at=at, limit=max(0, limit)
            )
            rows = await cur.fetchall()
        return [inbox_item(tuple(row), _when, at=at) for row in rows]

    async def inbox_fetch(
        self, receiver: str, message_id: str, *, at: datetime, lease: timedelta
    ) -> InboxDocument | None:
        """See ``InboxJournal.inbox_fetch``."""
        if lease <= timedelta(0):
            raise ValueError("an inbox lease must be positive")
        at = as_utc(at)
        async with self._connection() as cur:
            await _execute(
                cur,
                _SQL["inbox_fetch"],
                message_id=message_id,
                receiver=receiver,
                at=at,
                lease_until=at + lease,
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return InboxDocument(item=inbox_item(tuple(row[:-1]), _when, at=at), payload=bytes(row[-1]))

    async def inbox_ack(self, receiver: str, message_id: str, *, at: datetime) -> InboxAck:
        """See ``InboxJournal.inbox_ack``."""
        async with self._connection() as cur:
            await _execute(
                cur, _SQL["inbox_ack"], message_id=message_id, receiver=receiver, at=as_utc(at)
            )
            if await cur.fetchone() is not None:
                return InboxAck.ACKED
            await _execute(cur, _SQL["inbox_ack_look"], message_id=message_id, receiver=receiver)
            known = await cur.fetchone()
        return InboxAck.UNKNOWN if known is None else InboxAck.ALREADY_ACKED

    async def inbox_escalate(
        self, receiver: str, *, at: datetime, older_than: timedelta
    ) -> list[str]:
        """See ``InboxJournal.inbox_escalate``."""
        if older_than <= timedelta(0):
            raise ValueError("the escalation age must be positive")
        at = as_utc(at)
        move = _TRANSITIONS[MessageState.DEAD]
        if move is None:  # DEAD is reachable from every escalatable state
            raise RuntimeError("no transition statement towards DEAD")
        escalated: list[str] = []
        async with self._transaction() as cur:
            await cur.execute(
                _ESCALATE_LOOK, {"receiver": receiver, "cutoff": at - older_than, "at": at}
            )
            for message_id, fetches in await cur.fetchall():
                await cur.execute("DELETE FROM inbox WHERE message_id = %s", (message_id,))
                await _execute(cur, _SQL["state_of"], message_id=message_id)
                state = await cur.fetchone()
                if state is None or MessageState(state[0]) not in ESCALATABLE:
                    continue
                await _execute(
                    cur,
                    move,
                    message_id=message_id,
                    at=at,
                    error_code=PICKUP_NOT_ACKNOWLEDGED,
                    detail=pickup_detail(fetches),
                    attempt=None,
                )
                escalated.append(str(message_id))
        return escalated

    async def audit_append(self, entry: AuditEntry) -> int:
        """See ``AuditJournal.audit_append``."""
        async with self._connection() as cur:  # one statement, one round trip
            await _execute(cur, _SQL["audit_append"], **audit_params(entry, as_utc))
            row = await cur.fetchone()
        if row is None:  # an INSERT ... RETURNING always returns its row
            raise JournalUnavailable("The audit log did not confirm the entry.")
        return int(row[0])

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
        query = tables.audit_sql("postgresql", frozenset(given))
        async with self._transaction() as cur:
            await _execute(cur, query, **given, limit=max(0, limit))
            rows = await cur.fetchall()
        return [audit_entry(tuple(row), _when) for row in rows]

    async def delivery_outcomes(
        self, *, since: datetime, failures: int = 500
    ) -> dict[str, Outcomes]:
        """See ``OutcomeJournal.delivery_outcomes``."""
        async with self._transaction() as cur:
            await _execute(cur, _SQL["outcome_counts"], since=as_utc(since))
            counts = await cur.fetchall()
            await _execute(
                cur, _SQL["outcome_failures"], since=as_utc(since), limit=max(0, failures)
            )
            rows = await cur.fetchall()
        return outcomes_from_rows(list(counts), list(rows), _when)

    @asynccontextmanager
    async def job_lock(self, job: str) -> AsyncIterator[bool]:
        """Try for ``job``'s lock: a session advisory lock, keyed by the job and this journal's
        identity (so journals in other schemas of the database do not collide), taken on a
        connection of its own outside the pool and closed at the exit; when the holder dies, its
        connection goes and PostgreSQL releases the lock."""
        check_job_name(job)
        try:
            async with _deadline(self._op_timeout):
                conn = await psycopg.AsyncConnection.connect(
                    cast(str, self._pool.conninfo),  # open() gives the pool a string
                    autocommit=True,
                    connect_timeout=max(2, round(self._op_timeout)),
                )
        except _FAILURES as exc:
            raise _translated(exc, self._op_timeout) from exc
        try:
            try:
                async with _deadline(self._op_timeout):
                    cur = await conn.execute(_JOB_LOCK, {"job": f"asw-job:{job}:"})
                    row = await cur.fetchone()
            except _FAILURES as exc:
                raise _translated(exc, self._op_timeout) from exc
            yield bool(row and row[0])
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.close()  # ends the session, and with it the lock

    async def status(self) -> JournalStatus:
        """Whether the journal can write now: ok, read-only or unavailable, with the reason.

        Asks the server (one short query, bounded by the operation timeout). For readiness.
        """
        try:
            async with self._connection() as cur:
                await cur.execute(
                    "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')"
                )
                row = await cur.fetchone()
        except JournalUnavailable as exc:
            return JournalStatus(state="unavailable", reason=exc.detail)
        if row is not None and (row[0] or str(row[1]).lower() == "on"):
            return JournalStatus(
                state="read-only",
                reason="The PostgreSQL journal is read-only (a standby, or writes switched off).",
            )
        return JournalStatus(state="ok")

    async def healthy(self) -> bool:
        """True when the journal can write now (``status()`` is ok)."""
        status = await self.status()
        return status.ok

    async def close(self) -> None:
        """See ``Journal.close``."""
        if self._group is not None:
            await self._group.close(JournalUnavailable("The journal is closing."))
        await self._lender.close()
        await self._pool.close()


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """Group commit of the hot-path writes (see ``gateway.journal.group_commit``)."""

    enabled: bool = True
    window_ms: float = 0.5
    flushers: int = 3


_GROUP_DEFAULTS = GroupSettings()


class _Batches:
    """How ``GroupCommit`` runs a batch on this journal's connections (one libpq pipeline)."""

    def __init__(self, journal: PostgresJournal) -> None:
        self._journal = journal

    async def commit(self, writes: list[Write]) -> list[Row]:
        """BEGIN, every statement, COMMIT, sent together (one round trip); the first rows
        (``gateway.journal.pipeline``)."""
        journal = self._journal
        async with _deadline(journal._op_timeout):  # a frozen server cannot hold the batch
            conn = await journal._lender.lend()
            try:
                return await pipeline.run(conn, [(write.text, write.params) for write in writes])
            except psycopg.errors.ReadOnlySqlTransaction:
                await _drop(conn)
                raise
            finally:
                await journal._lender.give_back(conn)

    async def alone(self, write: Write) -> Row:
        """The write on its own, in autocommit, with its own error."""
        return await self._journal._alone(write.text, write.params)

    def rolled_back(self, exc: BaseException) -> bool:
        """A statement failed (deadlock, serialization, constraint): the server rolled the
        batch back and answered; not a lost connection, a timeout, read-only or full."""
        return isinstance(
            exc,
            psycopg.errors.TransactionRollback
            | psycopg.errors.IntegrityError
            | psycopg.errors.DataError
            | psycopg.errors.ProgrammingError,
        )

    def translated(self, exc: BaseException) -> BaseException:
        """The same error a single write would raise."""
        if isinstance(exc, _FAILURES):
            return _translated(exc, self._journal._op_timeout)
        return exc


class _Lender:
    """Lends the pool's autocommit connections from one operation straight to the next.

    Under load every operation used to check a connection out of the pool and back in, and
    waited for one through the pool's timed waits: a third of the journal's client CPU.
    Here a connection an operation is done with goes directly to an operation waiting for one
    (a plain future), and back to the pool only when nobody is waiting. At most ``limit``
    connections are lent at once; one that is broken, or not idle after its operation (a
    cancelled statement), goes back to the pool, which resets or replaces it.
    """

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any], *, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._lent = 0
        self._waiting: collections.deque[asyncio.Future[psycopg.AsyncConnection[Any]]] = (
            collections.deque()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def lend(self) -> psycopg.AsyncConnection[Any]:
        """A connection of this lender's: at once if under the limit, else the next one freed."""
        if self._lent < self._limit:
            self._lent += 1
            try:
                conn: psycopg.AsyncConnection[Any] = await self._pool.getconn()
            except BaseException:
                self._lent -= 1
                self._refill()
                raise
            return conn
        waiter: asyncio.Future[psycopg.AsyncConnection[Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                await self.give_back(waiter.result())
            raise

    async def give_back(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Pass ``conn`` to a waiting operation if it is fit for one, else return it."""
        if not conn.closed and conn.info.transaction_status is TransactionStatus.IDLE:
            while self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
        self._lent -= 1
        await self._pool.putconn(conn)
        self._refill()

    def _refill(self) -> None:
        """Fetch a fresh connection for each waiter a freed place can serve.

        Every waiter is served by a hand-over or by a fetch of its own, so none is forgotten
        when connections break (the fetch then fails, and the waiter with it, after the
        pool's timeout).
        """
        while self._waiting and self._lent < self._limit:
            waiter = self._waiting.popleft()
            if waiter.done():
                continue
            self._lent += 1
            task = asyncio.get_running_loop().create_task(self._fetch(waiter))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, waiter: asyncio.Future[psycopg.AsyncConnection[Any]]) -> None:
        try:
            conn = await self._pool.getconn()
        except Exception as exc:  # noqa: BLE001  (handed to the waiter that needed it)
            self._lent -= 1
            if not waiter.done():
                waiter.set_exception(exc)
            self._refill()
            return
        if waiter.done():  # it was cancelled meanwhile: serve the next one
            await self.give_back(conn)
        else:
            waiter.set_result(conn)

    async def close(self) -> None:
        """Fail whoever still waits; lent connections come back through ``give_back``."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(JournalUnavailable("The journal is closing."))


def split_url(url: str) -> tuple[str, dict[str, int], GroupSettings]:
    """Take the journal's own pool and group-commit parameters out of the URL; libpq would
    refuse them."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = POOL_PARAMETERS + GROUP_PARAMETERS
    sizes = {name: int(value) for name, value in query if name in POOL_PARAMETERS}
    given = {name: value for name, value in query if name in GROUP_PARAMETERS}
    switch = given.get("group_commit", "on").lower()
    if switch not in ("on", "off"):
        raise ValueError(f"group_commit is on or off, not {switch!r}")
    group = GroupSettings(
        enabled=switch == "on",
        window_ms=float(given.get("group_window_ms", _GROUP_DEFAULTS.window_ms)),
        flushers=int(given.get("group_flushers", _GROUP_DEFAULTS.flushers)),
    )
    rest = [(name, value) for name, value in query if name not in own]
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    netloc_url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return netloc_url, sizes, group
