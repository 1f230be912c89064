"""Schema migrations: a journal written by the version-1 gateway is upgraded and loses nothing.

The version-1 journals in ``data/`` were written by the gateway at schema version 1 itself
(``data/make_v1_journals.py``): thirty Form Ds in every state the hot path reaches, receipts,
links, an inbox row. Each test copies one (SQLite file; PostgreSQL dump restored into a schema
of its own), checks that today's gateway refuses it with the command to run, migrates it and
compares every row of every table before and after, then works on it.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from gateway.errors import JournalSchemaMismatch
from gateway.journal import AuditEntry, audit_of, migrate, open_journal, outcomes_of, schema_status
from gateway.journal.migrations import REVISIONS, revision_of
from gateway.journal.tables import SCHEMA_VERSION
from tests.journal.conftest import POSTGRES_URL, T0, make_record

DATA = Path(__file__).resolve().parent / "data"
V1_SCHEMA = "journal_v1"  # the schema name in journal-v1.sql
TABLES = ("messages", "message_states", "payloads", "links", "inbox")
ORDER = {
    "messages": "message_id",
    "message_states": "seq",
    "payloads": "message_id",
    "links": "message_id, related_message_id, relation",
    "inbox": "message_id",
}
COLUMNS = {"inbox": "message_id, receiver, stored_at, lease_until, fetches, acked_at"}
"""The version-1 columns of a table that gained columns later (the rest: every column)."""


def _rows(conn: Any, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` in a fixed order (bytes as bytes on both drivers)."""
    columns = COLUMNS.get(table, "*")
    cursor = conn.execute(f"SELECT {columns} FROM {table} ORDER BY {ORDER[table]}")  # noqa: S608
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cursor]


def _snapshot_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {table: _rows(db, table) for table in TABLES}


def _snapshot_postgres(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {table: _rows(conn, table) for table in TABLES}


@pytest.fixture
def v1_sqlite(tmp_path: Path) -> str:
    """The version-1 SQLite journal, copied (owner-only, as the gateway keeps it)."""
    path = tmp_path / "journal.db"
    shutil.copyfile(DATA / "journal-v1.db", path)
    path.chmod(0o600)
    return f"sqlite://{path}"


@pytest.fixture
async def v1_postgres() -> AsyncIterator[str]:
    """The version-1 PostgreSQL journal restored into a schema of its own, dropped after."""
    schema = f"journal_mig_{uuid.uuid4().hex[:10]}"
    dump = (DATA / "journal-v1.sql").read_text(encoding="utf-8").replace(V1_SCHEMA, schema)
    try:
        admin = await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    async with admin:
        subprocess.run(  # noqa: ASYNC221  (before the test runs)
            ["psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", POSTGRES_URL],
            input=dump,
            text=True,
            check=True,
            capture_output=True,
        )
        try:
            yield f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


Snapshot = Callable[[], dict[str, list[tuple[Any, ...]]]]


async def _upgrade_and_check(url: str, snapshot: Snapshot) -> None:
    """Refused before, migrated, every row of every table the same after, and every message
    reads back whole and can still move on."""
    before = snapshot()
    assert len(before["messages"]) == 35  # thirty Form Ds and five receipts
    assert {r[11] for r in before["messages"]} >= {"ACCEPTED", "QUEUED", "RETRYING", "DEAD"}
    assert before["links"]
    assert before["inbox"]
    with pytest.raises(JournalSchemaMismatch, match="run asw-gateway journal migrate"):
        await open_journal(url)
    status = schema_status(url)
    assert (status.current, status.expected) == (1, SCHEMA_VERSION)
    assert status.problem is not None
    assert "asw-gateway journal migrate" in status.problem

    assert migrate(url) == (1, SCHEMA_VERSION)
    assert snapshot() == before

    status = schema_status(url)
    assert (status.current, status.problem) == (SCHEMA_VERSION, None)
    assert status.journal_id is not None
    assert len(status.journal_id) == 32
    assert migrate(url) == (SCHEMA_VERSION, SCHEMA_VERSION)  # a second run changes nothing
    assert schema_status(url).journal_id == status.journal_id

    journal = await open_journal(url)
    try:
        payloads: dict[str, bytes] = {r[0]: r[1] for r in before["payloads"]}
        for row in before["messages"]:
            message_id, digest = row[0], row[9]
            view = await journal.get(message_id)
            assert view is not None
            assert view.summary.state.value == row[11]
            body = await journal.payload(message_id)
            assert body is not None
            assert body == payloads[message_id]
            assert hashlib.sha256(body).hexdigest() == digest
        # Still a working journal: the next message, and a delivery of an old queued one.
        fresh = make_record(b"<after-migration/>")
        outcome = await journal.record_accepted(fresh, b"<after-migration/>", at=T0)
        assert outcome.message_id == fresh.message_id
        claim = await journal.claim_delivery(
            "v1-message-001", at=T0 + timedelta(hours=1), digest=None
        )
        assert claim.granted
        assert await journal.mark_delivered("v1-message-001", at=T0 + timedelta(hours=1))
        # Version 3: the audit log and the delivery outcomes work on the migrated journal.
        seq = await audit_of(journal).audit_append(
            AuditEntry(
                at=T0,
                actor="Alice",
                role="operator",
                key_id=None,
                action="replay",
                target="v1-message-001",
                reason="after migration",
                detail=None,
            )
        )
        assert [e.seq for e in await audit_of(journal).audit_list()] == [seq]
        outcomes = await outcomes_of(journal).delivery_outcomes(since=T0)
        assert sum(o.delivered for o in outcomes.values()) >= 1
    finally:
        await journal.close()


async def test_sqlite_v1_journal_upgrades_without_losing_anything(v1_sqlite: str) -> None:
    """A version-1 SQLite journal is refused, migrated, and keeps every row of every table."""
    path = Path(v1_sqlite.removeprefix("sqlite://"))
    await _upgrade_and_check(v1_sqlite, lambda: _snapshot_sqlite(path))


async def test_postgres_v1_journal_upgrades_without_losing_anything(v1_postgres: str) -> None:
    """A version-1 PostgreSQL journal is refused, migrated, and keeps every row of every
    table."""
    await _upgrade_and_check(v1_postgres, lambda: _snapshot_postgres(v1_postgres))


async def test_newer_journal_is_refused_by_open_and_by_migrate(tmp_path: Path) -> None:
    """A journal at a version this gateway does not know is refused, and migrate leaves it."""
    url = f"sqlite://{tmp_path / 'journal.db'}"
    journal = await open_journal(url)
    await journal.close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute("UPDATE journal_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(JournalSchemaMismatch, match="Run the newer gateway"):
        await open_journal(url)
    with pytest.raises(JournalSchemaMismatch, match="Run the newer gateway"):
        migrate(url)
    status = schema_status(url)
    assert status.current == SCHEMA_VERSION + 1
    assert status.problem is not None


async def test_new_journal_is_created_at_the_newest_version(tmp_path: Path) -> None:
    """The gateway creates a missing journal at its own version with an identity; the status
    of a journal that does not exist yet is no version and no problem."""
    url = f"sqlite://{tmp_path / 'journal.db'}"
    status = schema_status(url)
    assert (status.current, status.problem) == (None, None)
    assert not (tmp_path / "journal.db").exists()  # the check never creates one
    journal = await open_journal(url)
    await journal.close()
    status = schema_status(url)
    assert status.current == SCHEMA_VERSION
    assert status.journal_id is not None


async def test_migrate_creates_a_postgres_journal_where_none_is() -> None:
    """``migrate`` on an empty PostgreSQL schema creates the journal at the newest version."""
    from tests.journal.conftest import fresh_postgres_journal

    async with fresh_postgres_journal() as url:
        assert schema_status(url).current is None
        assert migrate(url) == (None, SCHEMA_VERSION)
        assert schema_status(url).current == SCHEMA_VERSION
        journal = await open_journal(url)
        await journal.close()


def test_one_revision_per_schema_version_ending_at_this_gateways() -> None:
    """The Alembic revisions form one chain 0001 -> ... -> this gateway's SCHEMA_VERSION."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(REVISIONS))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [revision_of(SCHEMA_VERSION)]
    chain = [s.revision for s in scripts.walk_revisions("base", "heads")]
    assert chain == [revision_of(v) for v in range(SCHEMA_VERSION, 0, -1)]


def test_journal_cli_status_and_migrate(v1_sqlite: str) -> None:
    """``asw-gateway journal status`` exits 1 naming migrate; ``migrate`` fixes it; status 0."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "journal", *args, "--url", v1_sqlite],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    before = cli("status")
    assert before.returncode == 1
    assert "run asw-gateway journal migrate" in before.stdout
    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"from schema version 1 to {SCHEMA_VERSION}" in migrated.stdout
    after = cli("status")
    assert after.returncode == 0
    assert f"schema version {SCHEMA_VERSION}" in after.stdout
