"""What start-up asks of the journal before anything runs: reachable, known schema, identity.

``check_journal(url)`` connects once, with a short timeout, straight through the driver (so a
missing PostgreSQL role or a wrong password is reported in the server's own words, not as a
pool that never filled), then opens the journal the way the gateway does (``open_journal``,
which creates a new journal's schema and refuses one newer than this gateway knows:
``check_schema`` is that one decision), and reads the journal's identity.

The identity is a random UUID written once into the journal (table ``journal_identity``, one
row) and kept by every backup and restore of it. Start-up records it on the broker and compares
it there at every start (``gateway.startup``), so that a gateway never consumes queues that
belong to a different journal.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.errors import JournalUnavailable
from gateway.journal import open_journal
from gateway.journal.tables import SCHEMA_VERSION

CONNECT_TIMEOUT_SECONDS = 5.0
POOL_OPTIONS = frozenset({"pool_min_size", "pool_max_size"})

_CREATE = (
    "CREATE TABLE IF NOT EXISTS journal_identity ("
    "singleton INTEGER PRIMARY KEY CHECK (singleton = 1), identity TEXT NOT NULL)"
)
_INSERT = (
    "INSERT INTO journal_identity (singleton, identity) VALUES (1, {p}) ON CONFLICT DO NOTHING"
)
_SELECT = "SELECT identity FROM journal_identity WHERE singleton = 1"
_IDENTITY_LOCK = 0x4A4E4C4944  # pg_advisory_xact_lock key: concurrent first starts agree


@dataclass(frozen=True, slots=True)
class JournalCheck:
    """A journal that start-up found usable: its identity and schema version."""

    identity: str
    schema_version: int


def check_schema(version: int | None, where: str) -> None:
    """Refuse a journal whose schema this gateway does not know (None: a new journal)."""
    if version is not None and version > SCHEMA_VERSION:
        raise JournalUnavailable(
            f"The journal at {where} has schema version {version}; this gateway knows only up "
            f"to {SCHEMA_VERSION}. Run the newer gateway or restore a backup."
        )


def describe(url: str) -> str:
    """The journal URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def check_journal(url: str, *, op_timeout: float = CONNECT_TIMEOUT_SECONDS) -> JournalCheck:
    """Reach the journal, open it as the gateway does, and read its identity.

    Raises ``JournalUnavailable`` (or ``ValueError`` for a URL the gateway cannot read) with
    a message naming the journal and the cause.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        await asyncio.to_thread(_sqlite_reachable, urlsplit(url).path)
    elif scheme in ("postgresql", "postgres"):
        await _postgres_reachable(url)
    journal = await open_journal(url, op_timeout=op_timeout)  # schema created or checked here
    await journal.close()
    if scheme == "sqlite":
        checked = await asyncio.to_thread(_sqlite_identity, urlsplit(url).path)
    else:
        checked = await _postgres_identity(url)
    check_schema(checked.schema_version, describe(url))
    return checked


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


def _sqlite_identity(path: str) -> JournalCheck:
    try:
        db = sqlite3.connect(path, timeout=CONNECT_TIMEOUT_SECONDS, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(_CREATE)
            db.execute(_INSERT.format(p="?"), (str(uuid.uuid4()),))
            db.execute("COMMIT")
            identity = db.execute(_SELECT).fetchone()[0]
            version = db.execute("SELECT max(version) FROM journal_schema").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise JournalUnavailable(f"The SQLite journal {path} failed: {exc}") from exc
    return JournalCheck(identity=str(identity), schema_version=int(version))


def _conninfo(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in POOL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _connect(url: str) -> Any:
    import psycopg  # noqa: PLC0415 - only a PostgreSQL deployment needs psycopg

    try:
        return await psycopg.AsyncConnection.connect(
            _conninfo(url), autocommit=True, connect_timeout=round(CONNECT_TIMEOUT_SECONDS)
        )
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        raise JournalUnavailable(
            f"The PostgreSQL journal {describe(url)} cannot be reached: {text}"
        ) from exc


async def _postgres_reachable(url: str) -> None:
    conn = await _connect(url)
    await conn.close()


async def _postgres_identity(url: str) -> JournalCheck:
    import psycopg  # noqa: PLC0415

    conn = await _connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_IDENTITY_LOCK,))
            await conn.execute(_CREATE)
            await conn.execute(_INSERT.format(p="%s"), (str(uuid.uuid4()),))
        identity = await (await conn.execute(_SELECT)).fetchone()
        version = await (await conn.execute("SELECT max(version) FROM journal_schema")).fetchone()
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        raise JournalUnavailable(f"The PostgreSQL journal {describe(url)} failed: {text}") from exc
    finally:
        await conn.close()
    return JournalCheck(identity=str(identity[0]), schema_version=int(version[0]))
