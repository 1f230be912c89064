"""Fixtures that give every contract test a fresh, empty journal on each backend.

SQLite gets a file in the test's temporary directory. PostgreSQL gets a schema of its own
(random name, reached through ``search_path`` in the URL) that is dropped afterwards. If the
server cannot be reached the PostgreSQL tests skip with the reason, except under ``CI=true``,
where they fail: a CI run that silently skipped half the contract would prove nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from gateway.journal import Journal, MessageRecord, open_journal

POSTGRES_URL = os.environ.get("ASW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)

OpenJournal = Callable[[], Awaitable[Journal]]


def at(seconds: float) -> datetime:
    """A moment ``seconds`` after the test epoch; tests never read the clock."""
    return T0 + timedelta(seconds=seconds)


def make_record(payload: bytes, **overrides: object) -> MessageRecord:
    """A Form D record from SG to TH describing ``payload``; keywords override fields."""
    record = MessageRecord(
        message_id=str(uuid.uuid4()),
        sender="SG",
        receiver="TH",
        document_type="EFD",
        document_id=f"SG-{uuid.uuid4().hex[:10]}",
        function_code="9",
        referenced_message_id=None,
        test=False,
        size=len(payload),
        digest=hashlib.sha256(payload).hexdigest(),
        received_at=T0,
    )
    return replace(record, **overrides)  # type: ignore[arg-type]


def _postgres_unreachable(reason: str) -> None:
    message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the contract must run against PostgreSQL)")
    pytest.skip(f"{message} (set ASW_TEST_POSTGRES_URL; fails instead of skipping when CI=true)")


@contextlib.asynccontextmanager
async def fresh_postgres_journal() -> AsyncIterator[str]:
    """The URL of an empty PostgreSQL journal in a schema of its own, dropped afterwards."""
    schema = f"journal_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        _postgres_unreachable(str(exc).strip())
    async with admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in POSTGRES_URL else "?"
        try:
            yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
async def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty journal on one backend."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'journal.db'}"
        return
    async with fresh_postgres_journal() as url:
        yield url


@pytest.fixture
async def open_more(journal_url: str) -> AsyncIterator[OpenJournal]:
    """Open further, independent journals on the same storage (other connections, as if
    other processes), closed after the test."""
    opened: list[Journal] = []

    async def open_one() -> Journal:
        journal = await open_journal(journal_url)
        opened.append(journal)
        return journal

    yield open_one
    for journal in opened:
        await journal.close()


@pytest.fixture
async def journal(open_more: OpenJournal) -> Journal:
    """A fresh, empty journal on one backend."""
    return await open_more()
