"""Retention on both journal backends: archive then purge what is older, never anything newer."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import retention
from gateway.core.registers import CERTIFIED_EXPORTERS
from gateway.core.states import MessageState
from gateway.errors import SettingsError
from gateway.journal import Journal, MessageRecord, open_journal
from gateway.journal.contract import Refusal, audit_of, job_locks_of
from gateway.retention import run_retention
from gateway.settings import JournalSettings
from tests.journal.conftest import OpenJournal, make_record
from tests.journal.test_register_contract import _entry

OLD = datetime(2020, 3, 1, 8, 0, tzinfo=UTC)
ONE_DAY = JournalSettings(retention_days=1, allow_short_retention=True)
ROOT = Path(__file__).resolve().parents[2]


def old_refusal(at: datetime) -> Refusal:
    """A refusal journalled at ``at``."""
    return Refusal(
        refusal_id=str(uuid.uuid4()),
        state=MessageState.REJECTED,
        at=at,
        channel="http",
        caller="SG",
        sender="SG",
        size=4,
        digest="0" * 64,
        error_code="schema-violation",
        status=422,
    )


async def seed(journal: Journal, count: int, when: datetime) -> list[MessageRecord]:
    """``count`` delivered messages received, accepted and delivered at ``when``."""
    records = []
    for i in range(count):
        payload = f"<doc n='{i}' at='{when.isoformat()}'/>".encode()
        record = make_record(payload, received_at=when)
        await journal.record_accepted(record, payload, at=when)
        await journal.transition(record.message_id, MessageState.QUEUED, at=when)
        records.append(record)
    return records


def read_bundles(paths: list[Path]) -> list[dict[str, Any]]:
    """Every JSON line of the given gzip bundles."""
    lines = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as bundle:
            lines += [json.loads(line) for line in bundle]
    return lines


async def test_rows_from_2020_are_archived_then_purged_and_newer_rows_untouched(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 messages back-dated to 2020 go (in bundles, with payloads); today's stay."""
    monkeypatch.setattr(retention, "BUNDLE_SIZE", 300)
    old = await seed(journal, 1000, OLD)
    new = await seed(journal, 5, datetime.now(UTC))
    gone_refusal, kept_refusal = old_refusal(OLD), old_refusal(datetime.now(UTC))
    await journal.record_refusal(gone_refusal, b"<x/>")
    await journal.record_refusal(kept_refusal, None)
    archive = tmp_path / "archive"

    report = await run_retention(journal, ONE_DAY, now=datetime.now(UTC), archive_dir=archive)

    assert (report.messages, report.purged_messages) == (1000, 1000)
    assert (report.refusals, report.purged_refusals) == (1, 1)
    assert len(report.bundles) == 4
    assert sorted(archive.iterdir()) == sorted(report.bundles)  # no .part left behind
    lines = read_bundles(report.bundles)
    messages = {line["message_id"]: line for line in lines if line["kind"] == "message"}
    assert set(messages) == {r.message_id for r in old}
    sample = messages[old[7].message_id]
    assert base64.b64decode(sample["payload_base64"]).startswith(b"<doc n='7'")
    assert [c["state"] for c in sample["timeline"]] == ["RECEIVED", "ACCEPTED", "QUEUED"]
    assert [line["refusal_id"] for line in lines if line["kind"] == "refusal"] == [
        gone_refusal.refusal_id
    ]
    assert await journal.get(old[0].message_id) is None
    assert await journal.payload(old[999].message_id) is None
    for record in new:
        assert await journal.get(record.message_id) is not None
        assert await journal.payload(record.message_id) is not None
    assert await journal.get_refusal(kept_refusal.refusal_id) is not None

    again = await run_retention(journal, ONE_DAY, now=datetime.now(UTC), archive_dir=archive)
    assert (again.messages, again.bundles) == (0, [])


async def test_dry_run_counts_and_changes_nothing(journal: Journal, tmp_path: Path) -> None:
    """A dry run reports what would go, writes no bundle and deletes nothing."""
    old = await seed(journal, 3, OLD)
    report = await run_retention(
        journal, ONE_DAY, now=datetime.now(UTC), dry_run=True, archive_dir=tmp_path / "a"
    )
    assert (report.messages, report.purged_messages, report.bundles) == (3, 0, [])
    assert not (tmp_path / "a").exists()
    assert await journal.get(old[0].message_id) is not None


async def test_a_message_that_moved_is_not_purged(journal: Journal, tmp_path: Path) -> None:
    """The purge re-checks the age: only entries still older than the cutoff are deleted."""
    (record,) = await seed(journal, 1, OLD)
    cutoff = datetime.now(UTC) - timedelta(days=1)
    await journal.transition(record.message_id, MessageState.DEAD, at=datetime.now(UTC))
    assert await journal.purge_messages([record.message_id], cutoff) == 0
    assert await journal.get(record.message_id) is not None


async def test_retention_shorter_than_three_years_is_refused_without_override(
    journal: Journal, tmp_path: Path
) -> None:
    """retention_days below 1096 raises unless allow_short_retention is set."""
    with pytest.raises(SettingsError, match="allow_short_retention"):
        await run_retention(
            journal,
            JournalSettings(retention_days=30),
            now=datetime.now(UTC),
            archive_dir=tmp_path,
        )


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "journal", "purge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


async def test_cli_dry_run_then_purge_on_both_backends(journal_url: str, tmp_path: Path) -> None:
    """``asw-gateway journal purge`` reports, archives and purges; a short retention exits 2."""
    journal = await open_journal(journal_url)
    try:
        old = await seed(journal, 20, OLD)
        new = await seed(journal, 2, datetime.now(UTC))
    finally:
        await journal.close()
    archive = tmp_path / "bundles"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"[journal]\nurl = {json.dumps(journal_url)}\nretention_days = 1\n"
        f"allow_short_retention = true\narchive_dir = {json.dumps(str(archive))}\n"
    )
    dry = _cli(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["messages"] == 20
    assert not archive.exists()
    done = _cli(config)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["messages"], report["purged_messages"]) == (20, 20)
    assert {line["message_id"] for line in read_bundles([Path(p) for p in report["bundles"]])} == {
        r.message_id for r in old
    }
    assert "retention_progress" in done.stderr
    journal = await open_journal(journal_url)
    try:
        assert all([await journal.get(r.message_id) is not None for r in new])
        assert await journal.get(old[0].message_id) is None
    finally:
        await journal.close()

    config.write_text(f"[journal]\nurl = {json.dumps(journal_url)}\nretention_days = 1\n")
    refused = _cli(config, "--dry-run")
    assert refused.returncode == 2
    assert "allow_short_retention" in refused.stderr


async def test_a_register_update_stays_past_retention(journal: Journal, tmp_path: Path) -> None:
    """A register update of 2020 is neither archived nor purged: the grant may still be in force."""
    grant, plain = await seed(journal, 2, OLD)
    await journal.register_add(_entry(grant.message_id, "SGCE-U1", "GRANT"), at=OLD)

    report = await run_retention(
        journal, ONE_DAY, now=datetime.now(UTC), archive_dir=tmp_path / "archive"
    )

    assert (report.messages, report.purged_messages) == (1, 1)
    assert await journal.get(plain.message_id) is None
    assert await journal.get(grant.message_id) is not None
    history = await journal.register_history(CERTIFIED_EXPORTERS, "SG")
    assert [e.entry_id for e in history] == ["SGCE-U1"]
    assert await journal.purge_messages([grant.message_id], datetime.now(UTC)) == 0


async def test_two_nodes_on_one_journal_run_one_pass(
    open_more: OpenJournal, tmp_path: Path
) -> None:
    """Two nodes' retention at once on one journal: one runs, one skips; each entry goes once."""
    node_a, node_b = await open_more(), await open_more()
    old = await seed(node_a, 600, OLD)
    refusal = old_refusal(OLD)
    await node_a.record_refusal(refusal, b"<x/>")
    now = datetime.now(UTC)

    reports = await asyncio.gather(
        run_retention(node_a, ONE_DAY, now=now, archive_dir=tmp_path / "a", node="node-a"),
        run_retention(node_b, ONE_DAY, now=now, archive_dir=tmp_path / "b", node="node-b"),
    )

    assert sorted(r.skipped for r in reports) == [False, True]
    (ran,) = [r for r in reports if not r.skipped]
    (skipped,) = [r for r in reports if r.skipped]
    assert (ran.purged_messages, ran.purged_refusals) == (600, 1)
    assert (skipped.messages, skipped.purged_messages, skipped.bundles) == (0, 0, [])
    lines = read_bundles(
        [p for d in ("a", "b") if (tmp_path / d).exists() for p in sorted((tmp_path / d).iterdir())]
    )
    ids = [line.get("message_id") or line["refusal_id"] for line in lines]
    assert len(ids) == len(set(ids)) == 601  # nothing archived twice
    assert set(ids) == {r.message_id for r in old} | {refusal.refusal_id}
    purges = await audit_of(node_b).audit_list(action="retention-purge")
    assert [entry.actor for entry in purges] == [f"retention-job@{ran.node}"]


async def test_the_retention_lock_is_one_holder_at_a_time(open_more: OpenJournal) -> None:
    """While one journal object holds the retention lock, another is refused; then it is free."""
    first, second = job_locks_of(await open_more()), job_locks_of(await open_more())
    async with first.job_lock("retention") as held:
        assert held
        async with second.job_lock("retention") as also:
            assert not also
        async with first.job_lock("retention") as again:
            assert not again  # not re-entrant: one pass per holder too
        async with second.job_lock("other-job") as other:
            assert other
    async with second.job_lock("retention") as now_free:
        assert now_free
