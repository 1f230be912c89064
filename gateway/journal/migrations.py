"""The journal's schema version: check it (at start-up) and migrate it (Alembic), both backends.

A journal records its schema version in ``journal_schema.version``; this gateway's is
``tables.SCHEMA_VERSION``. At open a journal at another version is refused
(``journal-schema-mismatch``): an older one names the command that brings it up,
``asw-gateway journal migrate``, which runs the Alembic revisions in
``gateway/journal/revisions/versions`` (revision ``0002`` brings version 1 to 2, and so on) in
one transaction, under the same lock as schema creation (PostgreSQL: an advisory lock; SQLite:
``BEGIN IMMEDIATE``). A journal newer than the gateway is refused by both.

``journal_schema.version`` is the source of truth; Alembic's own ``alembic_version`` table is
set from it before each migration (``stamp``), so a journal created by the gateway at the
newest version, or one restored from a backup, needs no bookkeeping of its own.

Alembic is imported only by ``migrate``: checking the version at start-up reads one row
(``schema_status``) and costs nothing more (Alembic's import is about 0.12 s, measured).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from gateway.errors import JournalSchemaMismatch, JournalUnavailable
from gateway.journal import tables
from gateway.journal.schema import creates_schema, new_journal_id
from gateway.journal.tables import SCHEMA_VERSION, journal_schema

REVISIONS = Path(__file__).with_name("revisions")
"""Alembic's script location: ``env.py`` and ``versions/``, one revision per schema version."""


def revision_of(version: int) -> str:
    """The Alembic revision that leaves a journal at ``version`` (``0002`` for 2)."""
    return f"{version:04d}"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """A journal's schema version beside the one this gateway needs.

    ``current`` is None where there is no journal yet (the gateway creates it at its first
    start); ``journal_id`` is the journal's identity (None before version 2 or before it exists).
    """

    current: int | None
    expected: int
    journal_id: str | None = None

    @property
    def problem(self) -> str | None:
        """Why a gateway would refuse this journal (one sentence naming the fix), or None."""
        try:
            creates_schema(self.current, "")
        except JournalSchemaMismatch as exc:
            return exc.detail
        return None


def schema_status(url: str, *, timeout: float = 5.0) -> SchemaStatus:
    """The schema version of the journal at ``url`` and the one this gateway needs.

    Reads only: never creates a journal or a table. ``JournalUnavailable`` when the journal
    cannot be reached or read (with the driver's reason: a missing role, a refused
    connection, an unreadable file).
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not Path(parts.path).exists():
        return SchemaStatus(current=None, expected=SCHEMA_VERSION)
    try:
        with _engine(url, timeout=timeout, write=False).connect() as conn:
            current, journal_id = _read(conn)
    except sa.exc.DBAPIError as exc:
        raise JournalUnavailable(f"The journal cannot be read: {_first_line(exc.orig)}") from exc
    return SchemaStatus(current=current, expected=SCHEMA_VERSION, journal_id=journal_id)


def migrate(url: str, *, timeout: float = 30.0) -> tuple[int | None, int]:
    """Bring the journal at ``url`` to this gateway's schema version; (from, to).

    A journal that does not exist yet is created at the newest version (from is None). One
    transaction: a failed migration leaves the journal as it was. Stop the gateways and take a
    backup first (docs/journal.md).
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not Path(parts.path).exists():
        raise JournalUnavailable(
            f"There is no journal at {parts.path}: the gateway creates it at its first start."
        )
    engine = _engine(url, timeout=timeout, write=True)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                from gateway.journal.postgres import SCHEMA_LOCK  # noqa: PLC0415

                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            current, _ = _read(conn)
            if current is None:
                for statement in tables.ddl(conn.dialect.name):
                    conn.exec_driver_sql(statement)
                conn.execute(
                    sa.insert(journal_schema).values(
                        version=SCHEMA_VERSION, journal_id=new_journal_id()
                    )
                )
                return None, SCHEMA_VERSION
            if current > SCHEMA_VERSION:
                creates_schema(current, "")  # raises, naming the newer gateway
            if current < SCHEMA_VERSION:
                _upgrade(conn, current)
            after, _ = _read(conn)
            if after != SCHEMA_VERSION:
                raise JournalSchemaMismatch(
                    f"The migration left the journal at version {after}, not {SCHEMA_VERSION}; "
                    "nothing was changed."
                )
            return current, SCHEMA_VERSION
    except sa.exc.DBAPIError as exc:
        raise JournalUnavailable(
            f"The journal could not be migrated: {_first_line(exc.orig)}"
        ) from exc
    finally:
        engine.dispose()


def _upgrade(conn: sa.Connection, current: int) -> None:
    """Run the Alembic revisions from ``current`` to the newest, on ``conn`` (in its
    transaction)."""
    from alembic import command  # noqa: PLC0415  (only migrations pay for Alembic)
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(REVISIONS))
    config.attributes["connection"] = conn
    command.stamp(config, revision_of(current), purge=True)
    command.upgrade(config, revision_of(SCHEMA_VERSION))


def _read(conn: sa.Connection) -> tuple[int | None, str | None]:
    """(version, journal id) of the journal on ``conn``; (None, None) where it has no tables."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("journal_schema"):
        return None, None
    columns = {c["name"] for c in inspector.get_columns("journal_schema")}
    wanted = [sa.func.max(journal_schema.c.version)]
    if "journal_id" in columns:
        wanted.append(sa.func.max(journal_schema.c.journal_id))
    row = conn.execute(sa.select(*wanted)).one()
    version = None if row[0] is None else int(row[0])
    return version, (row[1] if len(row) > 1 else None)


def _engine(url: str, *, timeout: float, write: bool) -> sa.Engine:
    """A SQLAlchemy engine on the journal's own driver, from a journal URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path:
            raise ValueError(f"not a journal URL: {url!r} (sqlite:///absolute/path.db)")
        return _sqlite_engine(parts.path, timeout=timeout, write=write)
    if parts.scheme in ("postgresql", "postgres"):
        import psycopg  # noqa: PLC0415  (a SQLite deployment needs no psycopg)

        from gateway.journal.postgres import split_url  # noqa: PLC0415

        conninfo, _, _ = split_url(url)
        connect_timeout = max(2, round(timeout))

        def connect() -> Any:
            return psycopg.connect(conninfo, connect_timeout=connect_timeout)

        return sa.create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
    raise ValueError(f"unknown journal URL scheme {parts.scheme!r} (sqlite or postgresql)")


def _sqlite_engine(path: str, *, timeout: float, write: bool) -> sa.Engine:
    mode = "rw" if write else "ro"

    def connect() -> sqlite3.Connection:
        # isolation_level=None: SQLAlchemy's BEGIN (below) is the only one, and DDL runs inside
        # it (sqlite3's own implicit transactions would commit each ALTER on its own).
        return sqlite3.connect(
            f"file:{quote(path)}?mode={mode}", uri=True, timeout=timeout, isolation_level=None
        )

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock from the start

    return engine


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
