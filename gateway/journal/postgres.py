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

Tables live in the connection's ``search_path`` (the tests give each run its own schema with
``options=-csearch_path=...`` in the URL). Creating them is idempotent and guarded by an
advisory lock, so several processes may start at once.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus

from gateway.core.states import INITIAL_STATES, InvalidTransition, MessageState, next_state
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

POOL_PARAMETERS = ("pool_min_size", "pool_max_size")
"""URL query parameters the journal reads itself and does not pass to libpq."""

_SCHEMA_LOCK = 0x4A4F55524E414C  # "JOURNAL": pg_advisory_xact_lock key for schema creation

_DDL = (
    "CREATE TABLE IF NOT EXISTS journal_schema (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS messages (
        message_id text PRIMARY KEY,
        sender text NOT NULL,
        receiver text NOT NULL,
        document_type text NOT NULL,
        document_id text,
        function_code text NOT NULL,
        referenced_message_id text,
        test boolean NOT NULL,
        size bigint NOT NULL,
        digest text NOT NULL,
        received_at timestamptz NOT NULL,
        state text NOT NULL,
        state_at timestamptz NOT NULL,
        accepted_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        lease_until timestamptz,
        last_error_code text
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS messages_business_key
        ON messages (sender, document_type, document_id, function_code)
        WHERE document_id IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS messages_received_at ON messages (received_at)",
    "CREATE INDEX IF NOT EXISTS messages_state_at ON messages (state_at)",
    """CREATE TABLE IF NOT EXISTS message_states (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id text NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
        state text NOT NULL,
        at timestamptz NOT NULL,
        error_code text,
        detail text,
        attempt integer
    )""",
    "CREATE INDEX IF NOT EXISTS message_states_message ON message_states (message_id, seq)",
    """CREATE TABLE IF NOT EXISTS payloads (
        message_id text PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
        body bytea NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS links (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        message_id text NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
        related_message_id text NOT NULL,
        relation text NOT NULL,
        at timestamptz NOT NULL,
        PRIMARY KEY (message_id, related_message_id, relation)
    )""",
    "CREATE INDEX IF NOT EXISTS links_related ON links (related_message_id)",
    """CREATE TABLE IF NOT EXISTS inbox (
        message_id text PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
        receiver text NOT NULL,
        stored_at timestamptz NOT NULL,
        lease_until timestamptz,
        fetches integer NOT NULL DEFAULT 0,
        acked_at timestamptz
    )""",
    """CREATE INDEX IF NOT EXISTS inbox_waiting ON inbox (receiver, stored_at)
        WHERE acked_at IS NULL""",
)

_ROUNDS = 20
"""Compare-and-set attempts before giving up; contention on one message is a handful."""

_CLAIM_SQL = (
    # One statement: the conditional update and its timeline row commit together.
    "WITH won AS (UPDATE messages SET state = 'DELIVERING', state_at = %s, lease_until = %s, "
    "attempts = attempts + 1 WHERE message_id = %s AND (state = ANY(%s) "
    "OR (state = 'DELIVERING' AND (lease_until IS NULL OR lease_until <= %s))) "
    "AND (%s::text IS NULL OR digest = %s) RETURNING message_id, attempts), "
    "row AS (INSERT INTO message_states (message_id, state, at, attempt) "
    "SELECT message_id, 'DELIVERING', %s, attempts FROM won) "
    "SELECT attempts FROM won"
)
_ACCEPT_SQL = (
    # One statement: the message, its first two timeline rows (in order) and the payload, or
    # nothing at all if the message id or the business key is taken.
    f"WITH m AS (INSERT INTO messages ({SUMMARY_COLUMNS}) VALUES "  # noqa: S608
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, NULL) "
    "ON CONFLICT DO NOTHING RETURNING message_id), "
    "s AS (INSERT INTO message_states (message_id, state, at) "
    "SELECT m.message_id, v.state, v.at FROM m CROSS JOIN (VALUES "
    "(1, %s::text, %s::timestamptz), (2, %s::text, %s::timestamptz)) AS v (ord, state, at) "
    "ORDER BY v.ord), "
    "p AS (INSERT INTO payloads (message_id, body) SELECT message_id, %s FROM m) "
    "SELECT count(*) FROM m"
)
_ATTEMPT_VALUES = sorted(s.value for s in ATTEMPT_STATES)


@functools.cache
def _transition_statement(requested: MessageState) -> tuple[str, list[str]]:
    """The one-statement transition towards ``requested``, and the states it may leave.

    Written from the state table (``next_state``), so the SQL decides nothing the table does
    not say: a ``CASE`` maps each state that really moves to the state it moves to. The
    timeline row carries the attempt number given, else the row's attempts for a row that
    closes an attempt.
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
        return "", []  # nothing ever moves there (RECEIVED): only the read can answer
    cases = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in sorted(moves.items()))
    sql = (
        f"WITH u AS (UPDATE messages SET state = CASE state {cases} END, "  # noqa: S608
        "state_at = %s, lease_until = NULL, last_error_code = coalesce(%s, last_error_code) "
        "WHERE message_id = %s AND state = ANY(%s) RETURNING message_id, state, attempts) "
        "INSERT INTO message_states (message_id, state, at, error_code, detail, attempt) "
        "SELECT message_id, state, %s, %s, %s, coalesce(%s::integer, CASE WHEN "
        "state = ANY(%s) AND attempts > 0 THEN attempts END) FROM u RETURNING 1"
    )
    return sql, sorted(moves)


_LINK_SQL = (
    "WITH m AS (SELECT message_id FROM messages WHERE message_id = %s), "
    "i AS (INSERT INTO links (message_id, related_message_id, relation, at) "
    "SELECT message_id, %s, %s, %s FROM m ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM m), EXISTS (SELECT 1 FROM i)"
)
_CLAIMABLE = list(claimable_values())
_KNOWN_SQL = KNOWN_SQL.format(p="%s")


def _when(value: Any) -> datetime:
    return as_utc(value)


def _same(moment: datetime) -> datetime:
    return as_utc(moment)


class PostgresJournal:
    """``Journal`` on PostgreSQL; open it with ``PostgresJournal.open``."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        """Wrap an open pool; use ``open``, which also creates the schema."""
        self._pool = pool
        # Two of the pool's connections stay for the multi-statement transactions (reads).
        self._lender = _Lender(pool, limit=max(1, pool.max_size - 2))

    @classmethod
    async def open(cls, url: str, *, connect_timeout: float = 10.0) -> PostgresJournal:
        """Connect to ``url`` (``postgresql://...``) and bring the schema up to date.

        ``pool_min_size`` and ``pool_max_size`` in the query string size the pool (1 and 10).
        """
        conninfo, sizes = _split_url(url)
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            conninfo,
            min_size=sizes.get("pool_min_size", 1),
            max_size=sizes.get("pool_max_size", 10),
            kwargs={"autocommit": True},
            timeout=connect_timeout,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
            journal = cls(pool)
            await journal._create_schema()
        except psycopg_pool.PoolTimeout as exc:
            await pool.close()
            raise JournalUnavailable(f"The PostgreSQL journal cannot be reached: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        return journal

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """One transaction on a pooled connection, with driver failures translated."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn.cursor()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise JournalUnavailable(f"The PostgreSQL journal failed: {exc}") from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A connection in autocommit (each statement its own transaction), lent by ``_Lender``."""
        try:
            conn = await self._lender.lend()
        except psycopg_pool.PoolTimeout as exc:
            raise JournalUnavailable(f"The PostgreSQL journal failed: {exc}") from exc
        try:
            yield conn.cursor()
        except psycopg.OperationalError as exc:
            raise JournalUnavailable(f"The PostgreSQL journal failed: {exc}") from exc
        finally:
            await self._lender.give_back(conn)  # checks the connection is fit to lend on

    async def _create_schema(self) -> None:
        async with self._transaction() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _DDL:
                await cur.execute(statement)
            await cur.execute("SELECT max(version) FROM journal_schema")
            row = await cur.fetchone()
            version = None if row is None else row[0]
            if version is None:
                await cur.execute(
                    "INSERT INTO journal_schema (version) VALUES (%s)", (SCHEMA_VERSION,)
                )
            elif version > SCHEMA_VERSION:
                raise JournalUnavailable(
                    f"The PostgreSQL journal has schema version {version}; this gateway knows "
                    f"only up to {SCHEMA_VERSION}. Run the newer gateway."
                )

    async def record_accepted(
        self, entry: MessageRecord, payload: bytes, *, at: datetime
    ) -> AcceptOutcome:
        """See ``Journal.record_accepted``."""
        check_payload(entry, payload)
        at = as_utc(at)
        params = (
            *record_values(entry, _same),
            INITIAL_STATES[-1].value,
            at,
            at,
            INITIAL_STATES[0].value,
            as_utc(entry.received_at),
            INITIAL_STATES[1].value,
            at,
            payload,
        )
        async with self._connection() as cur:
            # A few rounds at most: when the insert meets a row that is gone by the time we
            # read (purged), try again; otherwise the second statement settles it.
            for _ in range(_ROUNDS):
                await cur.execute(_ACCEPT_SQL, params)
                inserted = await cur.fetchone()
                if inserted is not None and inserted[0] == 1:
                    return AcceptOutcome(
                        result=AcceptResult.ACCEPTED,
                        message_id=entry.message_id,
                        state=INITIAL_STATES[-1],
                        accepted_at=at,
                    )
                await cur.execute(_KNOWN_SQL, known_params(entry))
                rows = await cur.fetchall()
                known = settle_known(
                    entry, [(r[0], MessageState(r[1]), _when(r[2]), r[3]) for r in rows]
                )
                if known is not None:
                    return known
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
        sql, movable = _transition_statement(state)
        params = (
            *(at, error_code, message_id, movable),
            *(at, error_code, detail, attempt, _ATTEMPT_VALUES),
        )
        async with self._connection() as cur:
            # Compare and set in one statement: the UPDATE moves the row only from a state the
            # table lets it leave for ``state`` (PostgreSQL re-checks that condition against a
            # row a concurrent writer just changed). When nothing moved, read the state to
            # tell a no-op, a forbidden move and an unknown message apart, or to try again.
            for _ in range(_ROUNDS):
                if movable:
                    await cur.execute(sql, params)
                    if await cur.fetchone() is not None:
                        return True
                await cur.execute("SELECT state FROM messages WHERE message_id = %s", (message_id,))
                row = await cur.fetchone()
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
        params = (at, at + lease, message_id, _CLAIMABLE, at, digest, digest, at)
        async with self._connection() as cur:
            await cur.execute(_CLAIM_SQL, params)
            if await cur.fetchone() is not None:
                return ClaimResult.GRANTED
            await cur.execute(
                "SELECT state, digest, lease_until FROM messages WHERE message_id = %s",
                (message_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return ClaimResult.UNKNOWN
        return refused_claim(
            MessageState(row[0]),
            same_bytes=digest in (None, row[1]),
            lease_over=row[2] is None or _when(row[2]) <= at,
        )

    async def mark_delivered(self, message_id: str, *, at: datetime) -> bool:
        """See ``Journal.mark_delivered``."""
        return await self.transition(message_id, MessageState.DELIVERED, at=at)

    async def get(self, message_id: str) -> MessageView | None:
        """See ``Journal.get``."""
        async with self._transaction() as cur:
            # REPEATABLE READ for this one read, so the timeline and the state agree.
            await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await cur.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE message_id = %s",  # noqa: S608
                (message_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(
                f"SELECT {TIMELINE_COLUMNS} FROM message_states "  # noqa: S608
                "WHERE message_id = %s ORDER BY seq",
                (message_id,),
            )
            timeline = await cur.fetchall()
            await cur.execute(
                f"SELECT {LINK_COLUMNS} FROM links "  # noqa: S608
                "WHERE message_id = %s OR related_message_id = %s ORDER BY at, seq",
                (message_id, message_id),
            )
            links = await cur.fetchall()
        return MessageView(
            summary=summary_from_row(row, _when),
            timeline=tuple(
                StateChange(
                    state=MessageState(r[0]),
                    at=_when(r[1]),
                    error_code=r[2],
                    detail=r[3],
                    attempt=r[4],
                )
                for r in timeline
            ),
            links=tuple(
                Link(message_id=r[0], related_message_id=r[1], relation=r[2], at=_when(r[3]))
                for r in links
            ),
        )

    async def payload(self, message_id: str) -> bytes | None:
        """See ``Journal.payload``."""
        async with self._connection() as cur:  # one statement: no BEGIN/COMMIT round trips
            await cur.execute("SELECT body FROM payloads WHERE message_id = %s", (message_id,))
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def link(
        self, message_id: str, related_message_id: str, relation: str, *, at: datetime
    ) -> bool:
        """See ``Journal.link``."""
        async with self._connection() as cur:  # one statement, one round trip
            await cur.execute(_LINK_SQL, (message_id, related_message_id, relation, as_utc(at)))
            row = await cur.fetchone()
        if row is None or not row[0]:
            raise NotFound(f"The journal has no message {message_id}.")
        return bool(row[1])

    async def find_by_business_key(self, key: BusinessKey) -> MessageSummary | None:
        """See ``Journal.find_by_business_key``."""
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE sender = %s AND "  # noqa: S608
                "document_type = %s AND document_id = %s AND function_code = %s",
                (key.sender, key.document_type, key.document_id, key.function_code),
            )
            row = await cur.fetchone()
        return None if row is None else summary_from_row(row, _when)

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
                conditions.append(f"{column} = %s")
                params.append(value)
        if before is not None:
            conditions.append("received_at < %s")
            params.append(as_utc(before))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages {where} "  # noqa: S608  (fixed fragments)
                "ORDER BY received_at DESC, message_id DESC LIMIT %s",
                (*params, max(0, limit)),
            )
            rows = await cur.fetchall()
        return [summary_from_row(row, _when) for row in rows]

    async def counts(self, *, include_test: bool = False) -> Counts:
        """See ``Journal.counts``."""
        where = "" if include_test else "WHERE NOT test"
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT receiver, state, count(*) FROM messages {where} "  # noqa: S608
                "GROUP BY receiver, state ORDER BY receiver, state"
            )
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
                await cur.execute(
                    "SELECT message_id FROM messages WHERE state_at < %s "
                    "LIMIT %s FOR UPDATE SKIP LOCKED",
                    (cutoff, PURGE_BATCH),
                )
                ids = [row[0] for row in await cur.fetchall()]
                if ids:
                    # ON DELETE CASCADE takes the timeline, payload and links along.
                    await cur.execute("DELETE FROM messages WHERE message_id = ANY(%s)", (ids,))
            purged += len(ids)
            if len(ids) < PURGE_BATCH:
                return purged

    async def inbox_store(self, message_id: str, *, receiver: str, at: datetime) -> bool:
        """See ``InboxJournal.inbox_store``."""
        async with self._connection() as cur:
            await cur.execute(
                "INSERT INTO inbox (message_id, receiver, stored_at) "
                "SELECT message_id, %s, %s FROM messages WHERE message_id = %s "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (receiver, as_utc(at), message_id),
            )
            if await cur.fetchone() is not None:
                return True
            await cur.execute("SELECT 1 FROM messages WHERE message_id = %s", (message_id,))
            if await cur.fetchone() is None:
                raise NotFound(f"The journal has no message {message_id}.")
        return False

    async def inbox_waiting(
        self, receiver: str, *, at: datetime, limit: int = 100
    ) -> list[InboxItem]:
        """See ``InboxJournal.inbox_waiting``."""
        at = as_utc(at)
        async with self._connection() as cur:
            await cur.execute(
                f"SELECT {INBOX_COLUMNS} FROM {INBOX_FROM} "  # noqa: S608  (fixed fragments)
                "WHERE i.receiver = %s AND i.acked_at IS NULL "
                "AND (i.lease_until IS NULL OR i.lease_until <= %s) "
                "ORDER BY i.stored_at, i.message_id LIMIT %s",
                (receiver, at, max(0, limit)),
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
            # One statement: take the lease and read the row and the bytes it now holds.
            await cur.execute(
                "WITH i AS (UPDATE inbox SET lease_until = %s, fetches = fetches + 1 "
                "WHERE message_id = %s AND receiver = %s AND acked_at IS NULL "
                "RETURNING message_id, receiver, stored_at, fetches, lease_until, acked_at) "
                "SELECT i.message_id, i.receiver, m.sender, m.document_type, m.size, "
                "i.stored_at, i.fetches, i.lease_until, i.acked_at, p.body FROM i "
                "JOIN messages m ON m.message_id = i.message_id "
                "JOIN payloads p ON p.message_id = i.message_id",
                (at + lease, message_id, receiver),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return InboxDocument(item=inbox_item(tuple(row[:-1]), _when, at=at), payload=bytes(row[-1]))

    async def inbox_ack(self, receiver: str, message_id: str, *, at: datetime) -> InboxAck:
        """See ``InboxJournal.inbox_ack``."""
        async with self._connection() as cur:
            await cur.execute(
                "UPDATE inbox SET acked_at = %s, lease_until = NULL "
                "WHERE message_id = %s AND receiver = %s AND acked_at IS NULL RETURNING 1",
                (as_utc(at), message_id, receiver),
            )
            if await cur.fetchone() is not None:
                return InboxAck.ACKED
            await cur.execute(
                "SELECT 1 FROM inbox WHERE message_id = %s AND receiver = %s",
                (message_id, receiver),
            )
            known = await cur.fetchone()
        return InboxAck.UNKNOWN if known is None else InboxAck.ALREADY_ACKED

    async def close(self) -> None:
        """See ``Journal.close``."""
        await self._lender.close()
        await self._pool.close()


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


def _split_url(url: str) -> tuple[str, dict[str, int]]:
    """Take the journal's own pool parameters out of the URL; libpq would refuse them."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    sizes = {name: int(value) for name, value in query if name in POOL_PARAMETERS}
    rest = [(name, value) for name, value in query if name not in POOL_PARAMETERS]
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), sizes
