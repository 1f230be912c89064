"""A group-commit batch as one libpq pipeline (``gateway.journal.pipeline``): rows as a cursor
reads them, statements prepared once per connection, a failing statement rolls back the batch
and raises psycopg's own error, and the connection stays fit for the next batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from gateway.journal import pipeline
from tests.journal.conftest import fresh_postgres_journal


@pytest.fixture
async def conn() -> AsyncIterator[psycopg.AsyncConnection[object]]:
    """An autocommit connection in a schema of its own, with one small table."""
    async with fresh_postgres_journal() as url:
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with connection:
            await connection.execute(
                "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER CHECK (n >= 0))"
            )
            yield connection


def test_placeholders_become_positional() -> None:
    """Named placeholders become $n in order of first use; a name used twice is one parameter
    and a doubled percent sign is a percent sign."""
    query, order = pipeline.positional("SELECT %(a)s, %(b)s::int, %(a)s, 'x%%y' WHERE k LIKE %(c)s")
    assert query == b"SELECT $1, $2::int, $1, 'x%y' WHERE k LIKE $3"
    assert order == ("a", "b", "c")


async def test_rows_are_decoded_as_a_cursor_reads_them(
    conn: psycopg.AsyncConnection[object],
) -> None:
    """Each statement's first row comes back with the connection's adapters (timestamps, JSON,
    bytes, NULL), as a cursor would return it; a statement without rows gives None."""
    text = (
        "SELECT %(at)s::timestamptz, json_build_array(1, 'a'), %(body)s::bytea, "
        "%(n)s::int + 1, NULL::text"
    )
    params = {"at": datetime(2026, 12, 2, 3, 0, tzinfo=UTC), "body": b"\x00\xff", "n": 41}
    rows = await pipeline.run(
        conn,
        [(text, params), ("INSERT INTO t (k, n) VALUES (%(k)s, %(n)s)", {"k": "a", "n": 1})],
    )
    cur = await conn.execute(text, params)
    assert rows == [await cur.fetchone(), None]


async def test_statements_are_prepared_once_per_connection(
    conn: psycopg.AsyncConnection[object],
) -> None:
    """A statement run in many batches on one connection is prepared on it once."""
    insert = "INSERT INTO t (k, n) VALUES (%(k)s, %(n)s) RETURNING n"
    for batch in range(3):
        rows = await pipeline.run(conn, [(insert, {"k": f"{batch}-{i}", "n": i}) for i in range(4)])
        assert rows == [(i,) for i in range(4)]
    cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'asw_%'")
    assert await cur.fetchone() == (1,)


async def test_a_failing_statement_rolls_back_the_batch_and_raises_its_error(
    conn: psycopg.AsyncConnection[object],
) -> None:
    """A statement the server refuses rolls the whole batch back and raises psycopg's own error
    class; the connection is idle and runs the next batch."""
    insert = "INSERT INTO t (k, n) VALUES (%(k)s, %(n)s)"
    with pytest.raises(psycopg.errors.CheckViolation):
        await pipeline.run(
            conn,
            [
                (insert, {"k": "a", "n": 1}),
                (insert, {"k": "b", "n": -1}),
                (insert, {"k": "c", "n": 2}),
            ],
        )
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
    cur = await conn.execute("SELECT count(*) FROM t")
    assert await cur.fetchone() == (0,)
    assert await pipeline.run(conn, [(insert + " RETURNING k", {"k": "d", "n": 3})]) == [("d",)]
