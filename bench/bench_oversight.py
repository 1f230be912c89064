"""What the operator side costs, as ratios against a baseline timed in the same run.

    .venv/bin/python bench/bench_oversight.py [--messages 2000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--dir DIR]

On each backend (SQLite with synchronous=FULL in ``--dir``, PostgreSQL in a schema of its own):

- journalling one refusal (5 KB kept) against ``record_accepted`` of one 5 KB message (the
  baseline: what an accepted document costs the journal);
- one search page (50 rows, filtered by sender and window, with a cursor) and one refusal
  page, against ``get`` of one message;
- retention: archive + purge per message, against ``record_accepted`` per message.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from gateway.core.states import MessageState  # noqa: E402
from gateway.journal import Journal, MessageRecord, open_journal  # noqa: E402
from gateway.journal.contract import Cursor, MessageQuery, Refusal, RefusalQuery  # noqa: E402
from gateway.retention import run_retention  # noqa: E402
from gateway.settings import JournalSettings  # noqa: E402

PAYLOAD = (b"<EFormD>" + b"x" * 5000 + b"</EFormD>")[:5120]
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
OLD = datetime(2020, 3, 1, tzinfo=UTC)


def record(n: int, at: datetime) -> MessageRecord:
    """Message ``n``, received at ``at``."""
    return MessageRecord(
        message_id=str(uuid.uuid4()),
        sender=("SG", "TH", "MY", "ID")[n % 4],
        receiver="VN",
        document_type="EFD",
        document_id=f"B-{uuid.uuid4().hex[:12]}",
        function_code="9",
        referenced_message_id=None,
        test=False,
        size=len(PAYLOAD),
        digest=DIGEST,
        received_at=at + timedelta(milliseconds=n),
    )


def refusal(n: int) -> Refusal:
    """Refusal ``n``."""
    return Refusal(
        refusal_id=str(uuid.uuid4()),
        state=MessageState.REJECTED,
        at=datetime.now(UTC),
        channel="http",
        caller="SG",
        message_id=str(uuid.uuid4()),
        sender=("SG", "TH")[n % 2],
        size=len(PAYLOAD),
        digest=DIGEST,
        error_code="schema-violation",
        status=422,
        findings=({"code": "x", "message": "y"},),
    )


async def timed(label: str, count: int, step: object) -> float:
    """Mean microseconds per call of ``step(i)`` over ``count`` calls."""
    started = time.perf_counter()
    for i in range(count):
        await step(i)  # type: ignore[operator]
    mean = (time.perf_counter() - started) / count * 1e6
    print(f"  {label:<34} {mean:10.0f} us")
    return mean


async def bench(name: str, journal: Journal, messages: int, archive: Path) -> None:
    """All ratios on one journal."""
    print(f"{name}:")
    now = datetime.now(UTC)
    records = [record(i, now) for i in range(messages)]
    old = [record(i, OLD) for i in range(messages)]

    async def accept(i: int) -> None:
        await journal.record_accepted(records[i], PAYLOAD, at=now)

    async def refuse(i: int) -> None:
        await journal.record_refusal(refusal(i), PAYLOAD)

    accept_us = await timed("record_accepted (baseline)", messages, accept)
    refuse_us = await timed("record_refusal", messages, refuse)
    print(f"  -> refusal / accept = {refuse_us / accept_us:.2f}")

    async def get(i: int) -> None:
        await journal.get(records[i % messages].message_id)

    cursor = Cursor(now + timedelta(milliseconds=messages // 2), "ffffffff")

    async def search(i: int) -> None:
        await journal.search_messages(
            MessageQuery(sender="SG", since=now - timedelta(hours=1), after=cursor, limit=50)
        )

    async def refusals(i: int) -> None:
        await journal.list_refusals(
            RefusalQuery(sender="SG", error_code="schema-violation", limit=50)
        )

    get_us = await timed("get one message (baseline)", 200, get)
    search_us = await timed("search page of 50", 200, search)
    refusal_page_us = await timed("refusal page of 50", 200, refusals)
    print(
        f"  -> search page / get = {search_us / get_us:.2f}, "
        f"refusal page / get = {refusal_page_us / get_us:.2f}"
    )

    for i, entry in enumerate(old):
        await journal.record_accepted(entry, PAYLOAD, at=OLD + timedelta(milliseconds=i))
    started = time.perf_counter()
    report = await run_retention(
        journal,
        JournalSettings(retention_days=1, allow_short_retention=True),
        now=datetime.now(UTC),
        archive_dir=archive,
    )
    retention_us = (time.perf_counter() - started) / max(1, report.messages) * 1e6
    size = sum(p.stat().st_size for p in report.bundles)
    print(
        f"  retention: {report.purged_messages} messages archived and purged, "
        f"{retention_us:.0f} us each, bundle {size / max(1, report.messages):.0f} B/message"
    )
    print(f"  -> retention per message / accept = {retention_us / accept_us:.2f}")


async def main(args: argparse.Namespace) -> None:
    """Run on SQLite, then on PostgreSQL if reachable."""
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        journal = await open_journal(f"sqlite://{directory}/journal.db")
        try:
            await bench("sqlite (synchronous=FULL)", journal, args.messages, Path(directory) / "a")
        finally:
            await journal.close()
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            admin = await psycopg.AsyncConnection.connect(args.postgres, autocommit=True)
        except psycopg.OperationalError as exc:
            print(f"postgresql: skipped ({exc})")
            return
        async with admin:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            try:
                sep = "&" if "?" in args.postgres else "?"
                url = f"{args.postgres}{sep}options={quote(f'-csearch_path={schema}')}"
                journal = await open_journal(url)
                try:
                    await bench("postgresql", journal, args.messages, Path(directory) / "p")
                finally:
                    await journal.close()
            finally:
                await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--dir", default=None)
    asyncio.run(main(parser.parse_args()))
