"""Write the schema-version-1 journals that ``test_migrations.py`` upgrades (run once, kept).

Run with the gateway as it was at schema version 1 (``git archive`` of the commit before
migrations, unpacked somewhere) first on the path, so that the journals are written by that
gateway's own code, not imitated::

    git archive <v1-commit> gateway | tar -x -C /tmp/v1
    PYTHONPATH=/tmp/v1 .venv/bin/python tests/journal/data/make_v1_journals.py

It writes ``journal-v1.db`` (SQLite) and ``journal-v1.sql`` (a ``pg_dump`` of a PostgreSQL
journal in schema ``journal_v1``, which the test renames) beside this file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from gateway.core.states import MessageState
from gateway.journal import MessageRecord, inbox_of, open_journal
from gateway.journal.tables import SCHEMA_VERSION

HERE = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("ASW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
SCHEMA = "journal_v1"


def record(n: int, payload: bytes, **extra: object) -> MessageRecord:
    fields: dict[str, object] = {
        "message_id": f"v1-message-{n:03d}",
        "sender": "SG",
        "receiver": "TH" if n % 2 else "MY",
        "document_type": "EFD",
        "document_id": f"SG-V1-{n:03d}",
        "function_code": "9",
        "referenced_message_id": None,
        "test": n % 5 == 0,
        "size": len(payload),
        "digest": hashlib.sha256(payload).hexdigest(),
        "received_at": T0 + timedelta(seconds=n),
    }
    fields.update(extra)
    return MessageRecord(**fields)  # type: ignore[arg-type]


async def fill(url: str) -> None:
    """Thirty messages through every path the hot path takes, plus receipts, links, inbox."""
    journal = await open_journal(url)
    try:
        for n in range(30):
            payload = f"<EFormD n='{n}'>".encode() + bytes(range(256)) * (n % 4 + 1) + b"</EFormD>"
            at = T0 + timedelta(seconds=n, milliseconds=500)
            entry = record(n, payload)
            await journal.record_accepted(entry, payload, at=at)
            if n % 6 == 0:
                continue  # stays ACCEPTED
            await journal.transition(entry.message_id, MessageState.QUEUED, at=at)
            if n % 6 == 1:
                continue  # QUEUED
            claim = await journal.claim_delivery(entry.message_id, at=at, digest=entry.digest)
            assert claim.granted
            if n % 6 == 2:
                await journal.transition(
                    entry.message_id,
                    MessageState.RETRYING,
                    at=at + timedelta(seconds=1),
                    error_code="peer-unavailable",
                    detail="connection refused",
                )
                continue
            if n % 6 == 3:
                await journal.transition(
                    entry.message_id,
                    MessageState.DEAD,
                    at=at + timedelta(seconds=1),
                    error_code="peer-rejected",
                    detail="the receiver said no",
                )
                continue
            await journal.mark_delivered(entry.message_id, at=at + timedelta(seconds=1))
            if n % 6 == 4:
                await inbox_of(journal).inbox_store(entry.message_id, receiver="TH", at=at)
                await inbox_of(journal).inbox_fetch(
                    "TH", entry.message_id, at=at + timedelta(seconds=2), lease=timedelta(30)
                )
                continue
            receipt_payload = f"<Receipt of='{entry.message_id}'/>".encode()
            receipt = record(
                100 + n,
                receipt_payload,
                sender=entry.receiver,
                receiver="SG",
                document_type="RCP",
                document_id=None,
                referenced_message_id=entry.message_id,
            )
            await journal.record_accepted(receipt, receipt_payload, at=at + timedelta(seconds=2))
            await journal.link(
                entry.message_id, receipt.message_id, "receipt", at=at + timedelta(seconds=2)
            )
            await journal.transition(
                entry.message_id, MessageState.RECEIPTED, at=at + timedelta(seconds=2)
            )
    finally:
        await journal.close()


async def main() -> None:
    if SCHEMA_VERSION != 1:
        sys.exit(
            f"run this with the version-1 gateway first on PYTHONPATH (found {SCHEMA_VERSION})"
        )
    db = HERE / "journal-v1.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    await fill(f"sqlite://{db}")
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        await admin.execute(f'CREATE SCHEMA "{SCHEMA}"')
        try:
            await fill(f"{POSTGRES_URL}?options=-csearch_path%3D{SCHEMA}")
            dump = subprocess.run(  # noqa: ASYNC221  (a one-off script)
                ["pg_dump", "--no-owner", "--no-privileges", "--schema", SCHEMA, POSTGRES_URL],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            await admin.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
    (HERE / "journal-v1.sql").write_text(dump, encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
