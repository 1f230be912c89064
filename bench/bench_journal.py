"""Journal write speed: one message's journal work per unit, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_journal.py [--messages 2000] [--concurrency 50]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--dir DIR]

One unit is what the hot path writes for a delivered message: ``record_accepted`` (5 KB
payload) and three state changes (QUEUED, the delivery claim, DELIVERED): four transactions,
each durable on return. Each backend runs sequentially (one task) and with ``--concurrency``
tasks sharing one journal, and prints messages per second and per-unit latency.

SQLite is measured with synchronous=FULL (the default: survives power loss) and NORMAL
(survives a killed process only). The SQLite file goes in ``--dir`` (default: a temporary
directory), which should be on the disk the gateway would use, not tmpfs. PostgreSQL gets a
schema of its own, dropped afterwards.

Old and new: every backend runs twice, first with the journal as it was before its SQL was
written once (hand-written SQL per backend; loaded with ``git show`` from ``--old-commit`` into
a throw-away package), then with today's (SQLAlchemy Core statements compiled once per dialect,
run through the same drivers). The last line compares one compiled SELECT run through sqlite3
with the same statement run through SQLAlchemy's own ``Connection`` (compiled cache on).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from gateway.core.states import MessageState  # noqa: E402
from gateway.journal import Journal, MessageRecord, open_journal, tables  # noqa: E402

OLD_COMMIT = "744572fe5b3f559a96599fd74339131534e3cf27"
"""The last commit whose journal wrote its SQL by hand, once per backend."""
OLD_MODULES = ("__init__", "contract", "schema", "sqlite", "postgres")

Opener = Callable[[str], Awaitable[Any]]

PAYLOAD = (b"<EFormD>" + b"x" * 5000 + b"</EFormD>")[:5120]
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def record(n: int) -> MessageRecord:
    """A fresh Form D record; every message has its own id and business key."""
    return MessageRecord(
        message_id=str(uuid.uuid4()),
        sender="SG",
        receiver="TH",
        document_type="EFD",
        document_id=f"SG-BENCH-{uuid.uuid4().hex}",
        function_code="9",
        referenced_message_id=None,
        test=False,
        size=len(PAYLOAD),
        digest=DIGEST,
        received_at=T0 + timedelta(microseconds=n),
    )


OPERATIONS = ("record_accepted", "transition", "claim_delivery", "mark_delivered")


async def one_message(journal: Journal, n: int, split: list[float] | None = None) -> float:
    """Write one unit; return its latency in seconds, adding each operation's to ``split``."""
    entry = record(n)
    moment = entry.received_at
    marks = [time.perf_counter()]
    await journal.record_accepted(entry, PAYLOAD, at=moment)
    marks.append(time.perf_counter())
    await journal.transition(entry.message_id, MessageState.QUEUED, at=moment)
    marks.append(time.perf_counter())
    claim = await journal.claim_delivery(entry.message_id, at=moment)
    assert claim.granted  # the old journal has a ClaimResult class of its own
    marks.append(time.perf_counter())
    await journal.mark_delivered(entry.message_id, at=moment)
    marks.append(time.perf_counter())
    if split is not None:
        for i in range(len(OPERATIONS)):
            split[i] += marks[i + 1] - marks[i]
    return marks[-1] - marks[0]


async def per_operation(journal: Journal, messages: int) -> tuple[list[float], float]:
    """One task: mean wall time of each operation and process CPU per unit, in microseconds."""
    split = [0.0] * len(OPERATIONS)
    cpu = time.process_time()
    for n in range(messages):
        await one_message(journal, n, split)
    cpu = time.process_time() - cpu
    return [total / messages * 1e6 for total in split], cpu / messages * 1e6


async def run(journal: Journal, messages: int, concurrency: int) -> tuple[float, list[float]]:
    """Write ``messages`` units with ``concurrency`` tasks; return (messages/s, latencies)."""
    counter = iter(range(messages))
    latencies: list[float] = []

    async def worker() -> None:
        for n in counter:
            latencies.append(await one_message(journal, n))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return messages / (time.perf_counter() - start), latencies


def report(label: str, concurrency: int, rate: float, latencies: list[float]) -> None:
    """Print one result line."""
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{label:<22} tasks={concurrency:>3}  {rate:8.0f} msg/s  "
        f"({rate * 4:7.0f} tx/s)  p50 {cuts[49] * 1000:6.2f} ms  p99 {cuts[98] * 1000:7.2f} ms"
    )


async def bench(label: str, opener: Opener, url: str, messages: int, concurrency: int) -> None:
    """Sequential and concurrent runs, then each operation's cost, on one journal URL."""
    journal = await opener(url)
    try:
        await run(journal, min(100, messages), 1)  # warm-up: schema, caches, prepared statements
        for tasks in (1, concurrency):
            rate, latencies = await run(journal, messages, tasks)
            report(label, tasks, rate, latencies)
        walls, cpu = await per_operation(journal, messages)
        costs = "  ".join(
            f"{name} {wall:5.0f}" for name, wall in zip(OPERATIONS, walls, strict=True)
        )
        print(f"{label:<22} per op (us, 1 task): {costs}  | CPU/unit {cpu:5.0f} us")
    finally:
        await journal.close()


def load_old(commit: str, into: Path) -> Opener | None:
    """``open_journal`` of the journal at ``commit``, as package ``journal_before``; None if
    git cannot show it (not a checkout, or the commit is unknown)."""
    package = into / "journal_before"
    package.mkdir()
    for name in OLD_MODULES:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:gateway/journal/{name}.py"],
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode != 0:
            print(f"old journal: unavailable ({shown.stderr.strip()})")
            return None
        text = shown.stdout.replace("gateway.journal", "journal_before")
        (package / f"{name}.py").write_text(text, encoding="utf-8")
    sys.path.insert(0, str(into))
    opener: Opener = importlib.import_module("journal_before").open_journal
    return opener


def statement_overhead(directory: str, calls: int) -> None:
    """One compiled SELECT (a message's summary) run through sqlite3 and through SQLAlchemy."""
    path = f"{directory}/overhead.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    tables.metadata.create_all(engine)
    statement = tables.shared_statements()["summary"]
    assert isinstance(statement, sa.Select)
    compiled = tables.compile_for("sqlite", statement)
    db = sqlite3.connect(path)
    start = time.perf_counter()
    for n in range(calls):
        db.execute(compiled.text, compiled.params(message_id=str(n))).fetchone()
    direct = (time.perf_counter() - start) / calls * 1e6
    db.close()
    with engine.connect() as conn:
        start = time.perf_counter()
        for n in range(calls):
            conn.execute(statement, {"message_id": str(n)}).fetchone()
        through = (time.perf_counter() - start) / calls * 1e6
    engine.dispose()
    print(
        f"one SELECT, {calls} calls: sqlite3 with the text compiled once {direct:5.1f} us, "
        f"SQLAlchemy Connection (compiled cache) {through:5.1f} us"
    )


def parse_args() -> argparse.Namespace:
    """The command line; ``--dir`` is made absolute here, before the event loop runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    args = parser.parse_args()
    if args.dir is not None:
        args.dir = args.dir.resolve()
    return args


async def main(args: argparse.Namespace) -> None:
    """Run every backend, old journal then new."""
    print(f"unit = record_accepted (5 KB) + QUEUED + claim + DELIVERED; {args.messages} units")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        old = load_old(args.old_commit, Path(tmp))
        openers: list[tuple[str, Opener]] = [("new", open_journal)]
        if old is not None:
            openers.insert(0, ("old", old))
        for mode in ("full", "normal"):
            for version, opener in openers:
                url = f"sqlite://{tmp}/journal-{mode}-{version}.db?synchronous={mode}"
                label = f"sqlite {mode} {version}"
                await bench(label, opener, url, args.messages, args.concurrency)
        try:
            admin = await psycopg.AsyncConnection.connect(args.postgres, autocommit=True)
        except psycopg.OperationalError as exc:
            print(f"postgres: skipped, {args.postgres} unreachable: {exc}")
        else:
            async with admin:
                for version, opener in openers:
                    await bench_postgres(admin, args, f"postgres {version}", opener)
        statement_overhead(tmp, 20_000)


async def bench_postgres(
    admin: psycopg.AsyncConnection[Any], args: argparse.Namespace, label: str, opener: Opener
) -> None:
    """One PostgreSQL run in a schema of its own, dropped afterwards."""
    schema = f"journal_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in args.postgres else "?"
        options = quote(f"-csearch_path={schema}")
        url = f"{args.postgres}{separator}options={options}&pool_max_size=20"
        await bench(label, opener, url, args.messages, args.concurrency)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
