"""What start-up asks of the journal before anything runs: reachable, known schema, identity.

``check_journal(url)`` connects once, with a short timeout, straight through the driver (so a
missing PostgreSQL role or a wrong password is reported in the server's own words and with the
journal's address, not as a pool that never filled), then reads the schema version
(``gateway.journal.migrations.schema_status``): a journal at another version than this
gateway's is refused with the fix named (``asw-gateway journal migrate``, or a newer gateway),
and a journal that does not exist yet is created the way the gateway creates it
(``open_journal``). It returns the journal's identity, ``journal_schema.journal_id``: a random
id given once and kept by every backup and restore, which start-up records on the broker and
compares there at every start (``gateway.startup``), so that a gateway never consumes queues
that belong to a different journal.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.errors import JournalUnavailable
from gateway.journal import open_journal
from gateway.journal.migrations import SchemaStatus, schema_status

CONNECT_TIMEOUT_SECONDS = 5.0
POOL_OPTIONS = frozenset({"pool_min_size", "pool_max_size"})


def describe(url: str) -> str:
    """The journal URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def check_schema(status: SchemaStatus, url: str) -> None:
    """Refuse a journal at a schema version this gateway does not run on, naming the fix."""
    problem = status.problem
    if problem is not None:
        raise JournalUnavailable(f"The journal {describe(url)}: {problem}")


async def check_journal(url: str, *, op_timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """Reach the journal, check its schema version, create it if new; return its identity.

    Raises ``JournalUnavailable`` (or ``ValueError`` for a URL the gateway cannot read) with
    a message naming the journal and the cause.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        await asyncio.to_thread(_sqlite_reachable, urlsplit(url).path)
    elif scheme in ("postgresql", "postgres"):
        await _postgres_reachable(url)
    else:
        raise ValueError(f"unknown journal URL scheme {scheme!r} (sqlite or postgresql)")
    status = await asyncio.to_thread(schema_status, url, timeout=op_timeout)
    check_schema(status, url)
    if status.current is None or status.journal_id is None:
        journal = await open_journal(url, op_timeout=op_timeout)  # a new journal: created here
        await journal.close()
        status = await asyncio.to_thread(schema_status, url, timeout=op_timeout)
        check_schema(status, url)
    if status.journal_id is None:
        raise JournalUnavailable(f"The journal {describe(url)} has no identity (journal_id).")
    return status.journal_id


def _sqlite_reachable(path: str) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        raise JournalUnavailable(
            f"The SQLite journal's folder {folder} does not exist; create it (mkdir -p) or "
            "point journal.url elsewhere."
        )
    file = Path(path)
    if file.exists():
        try:
            with file.open("rb"):
                pass
        except OSError as exc:
            raise JournalUnavailable(
                f"The SQLite journal {file} cannot be read ({exc.strerror})."
            ) from exc
    try:
        probe = folder / f".asw-write-check-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise JournalUnavailable(
            f"The SQLite journal's folder {folder} is not writable ({exc.strerror}); the "
            "journal needs it for its write-ahead log."
        ) from exc


def _conninfo(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in POOL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _postgres_reachable(url: str) -> None:
    import psycopg  # noqa: PLC0415 - only a PostgreSQL deployment needs psycopg

    try:
        conn: Any = await psycopg.AsyncConnection.connect(
            _conninfo(url), autocommit=True, connect_timeout=round(CONNECT_TIMEOUT_SECONDS)
        )
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        raise JournalUnavailable(
            f"The PostgreSQL journal {describe(url)} cannot be reached: {text}"
        ) from exc
    await conn.close()
