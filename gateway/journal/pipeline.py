"""One group-commit batch as one libpq pipeline: BEGIN, the statements, COMMIT, one sync.

psycopg's own pipeline mode (``conn.pipeline()`` and a cursor per statement) waits on the
socket through the event loop after every ``execute`` and builds a cursor, a query conversion
and a result set for each: most of the journal's client CPU under load was that. Here a batch
is queued in libpq in one go (each statement prepared once per connection, then run by name),
flushed, and its results read back in one pass; each statement's first row is decoded with the
connection's own adapters (``psycopg.adapt.Transformer``), so the rows are what a cursor would
return. Nothing changes on the server: the same statements in the same order, in one
transaction, committed by one ``COMMIT``, its answer read before any caller hears back.

A statement that fails makes PostgreSQL skip the rest up to the sync (the transaction is rolled
back): the first error is raised as psycopg would raise it (``psycopg.errors``), so the group
commit's error rules are unchanged.
"""

from __future__ import annotations

import functools
import itertools
import re
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import fetch_many, send

_PLACEHOLDER = re.compile(rb"%\((\w+)\)s|%%")

_prepared: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], dict[Any, bytes]] = (
    weakref.WeakKeyDictionary()
)
"""Per connection: the statements (text and parameter types) prepared on it, by name."""

_names = itertools.count(1)
"""Prepared statements' names, unique in the process (a name is never tried twice)."""


@functools.lru_cache(maxsize=256)
def positional(text: str) -> tuple[bytes, tuple[str, ...]]:
    """The statement with ``$n`` placeholders instead of ``%(name)s``, and the names in order
    (a name used twice is one parameter)."""
    order: list[str] = []

    def number(match: re.Match[bytes]) -> bytes:
        if match.group(0) == b"%%":
            return b"%"
        name = match.group(1).decode()
        if name not in order:
            order.append(name)
        return b"$%d" % (order.index(name) + 1)

    return _PLACEHOLDER.sub(number, text.encode()), tuple(order)


Key = tuple[bytes, tuple[int, ...]]
"""A prepared statement's identity: its text and its parameters' types."""


class _Batch:
    """One batch on one connection: queued in libpq, then read back result by result."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._pgconn = conn.pgconn
        self._encoding = conn.info.encoding
        self._tx = Transformer(conn)
        self._prepared = _prepared.setdefault(conn, {})
        self._preparing: list[tuple[Key, bytes] | None] = []
        self.error: psycopg.Error | None = None
        """The first statement's error (the server skipped the rest)."""

    def queue(self, statements: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """BEGIN, each statement (prepared first where this connection has not yet), COMMIT
        and the sync, into libpq's buffer."""
        pgconn, tx = self._pgconn, self._tx
        fresh: dict[Key, bytes] = {}
        pgconn.send_query_params(b"BEGIN", None)
        for text, params in statements:
            query, order = positional(text)
            values = tx.dump_sequence([params[n] for n in order], [PyFormat.AUTO] * len(order))
            key = (query, tuple(tx.types or ()))
            name = self._prepared.get(key) or fresh.get(key)
            if name is None:
                name = fresh[key] = b"asw_%d" % next(_names)
                pgconn.send_prepare(name, query, param_types=key[1])
                self._preparing.append((key, name))
            else:
                self._preparing.append(None)
            pgconn.send_query_prepared(
                name, values, param_formats=tx.formats, result_format=pq.Format.TEXT
            )
        pgconn.send_query_params(b"COMMIT", None)
        pgconn.pipeline_sync()

    def _results(self) -> PQGen[list[pq.abc.PGresult]]:
        """The next command's results; the first error is kept in ``error``."""
        results: list[pq.abc.PGresult] = yield from fetch_many(self._pgconn)
        if self.error is None:
            for result in results:
                if result.status == pq.ExecStatus.FATAL_ERROR:
                    self.error = psycopg.errors.error_from_result(result, encoding=self._encoding)
        return results

    def read(self) -> PQGen[list[tuple[Any, ...] | None]]:
        """Flush, then read every answer up to the sync; each statement's first row."""
        yield from send(self._pgconn)
        yield from self._results()  # BEGIN
        rows: list[tuple[Any, ...] | None] = []
        for preparing in self._preparing:
            if preparing is not None:
                made = yield from self._results()
                if any(r.status == pq.ExecStatus.COMMAND_OK for r in made):
                    self._prepared[preparing[0]] = preparing[1]
            results = yield from self._results()
            rows.append(self._first_row(results[-1]) if results and self.error is None else None)
        yield from self._results()  # COMMIT
        sync = yield from fetch_many(self._pgconn)
        if not sync or sync[0].status != pq.ExecStatus.PIPELINE_SYNC:
            raise psycopg.OperationalError("the journal's batch lost its pipeline sync")
        if self.error is not None:
            # The COMMIT was skipped: the transaction is aborted until it is rolled back.
            self._pgconn.send_query_params(b"ROLLBACK", None)
            self._pgconn.pipeline_sync()
            yield from send(self._pgconn)
            yield from fetch_many(self._pgconn)
            yield from fetch_many(self._pgconn)
            raise self.error
        return rows

    def _first_row(self, result: pq.abc.PGresult) -> tuple[Any, ...] | None:
        if result.status != pq.ExecStatus.TUPLES_OK or not result.ntuples:
            return None
        self._tx.set_pgresult(result)
        row: tuple[Any, ...] = self._tx.load_row(0, tuple)
        return row


def _batch(
    conn: psycopg.AsyncConnection[Any], statements: Sequence[tuple[str, dict[str, Any]]]
) -> PQGen[list[tuple[Any, ...] | None]]:
    """The generator ``conn.wait`` drives: queue, flush, read; each statement's first row."""
    pgconn = conn.pgconn
    batch = _Batch(conn)
    pgconn.enter_pipeline_mode()
    try:
        batch.queue(statements)
        return (yield from batch.read())
    finally:
        if pgconn.status == pq.ConnStatus.OK:
            try:
                pgconn.exit_pipeline_mode()
            except psycopg.Error:  # results left unread (cancelled): the pool replaces it
                pgconn.finish()


async def run(
    conn: psycopg.AsyncConnection[Any], statements: Sequence[tuple[str, dict[str, Any]]]
) -> list[tuple[Any, ...] | None]:
    """Run ``statements`` in one transaction on ``conn`` (one pipeline, one sync); the first row
    of each (None where it returned none). Raises the first statement's error, if any."""
    return await conn.wait(_batch(conn, statements))
