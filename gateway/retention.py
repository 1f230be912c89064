"""Retention: archive what is older than ``journal.retention_days``, then purge it.

A run takes the cutoff ``now - retention_days`` and works in bundles of at most
``BUNDLE_SIZE`` messages (and as many refusals): it reads the expired entries (messages whose
last state change is before the cutoff, refusals journalled before it), writes them with their
payloads, timelines and links as JSON lines into a gzip file in ``journal.archive_dir``
(written as ``.part``, flushed to disk, then renamed), and only then deletes exactly those
entries, each only if it is still older than the cutoff (a message replayed meanwhile stays).
A crash between archive and purge leaves a complete bundle and rows a later run archives again:
nothing is ever purged that is not in a finished bundle. Progress is logged per bundle.

The ATIGA Operational Certification Procedures keep records at least three years; a
retention shorter than ``MIN_RETENTION_DAYS`` is refused unless
``journal.allow_short_retention`` is set (tests, or a jurisdiction that archives elsewhere).

One pass runs at a time per journal, whatever the number of nodes and workers: a pass first
takes the journal's ``retention`` job lock (``JobLocks``: a PostgreSQL advisory lock, or a file
lock beside a SQLite journal), holds it to the end and skips, logging ``retention_skipped``, when
another node or worker holds it. The report, the logs and the audit entry name the node
(``node.name``) that ran the pass.

``--dry-run`` counts what would go and writes nothing (and takes no lock).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gateway.errors import SettingsError
from gateway.journal import Journal, MessageSummary
from gateway.journal.contract import Refusal, job_locks_of
from gateway.journal.export import refusal_json, summary_json, timeline_json
from gateway.replay import OperatorAction, record_operator_action
from gateway.settings import MIN_RETENTION_DAYS, JournalSettings

log = structlog.get_logger("gateway.retention")

BUNDLE_SIZE = 10_000
"""Most messages (and, apart, refusals) per archive bundle."""
PAGE = 500
"""Entries read per journal query."""
FILE_MODE = 0o600
JOB = "retention"
"""The journal job lock a pass holds."""


@dataclass(slots=True)
class RetentionReport:
    """What one run did (or, dry, would do)."""

    cutoff: datetime
    dry_run: bool
    node: str = ""
    skipped: bool = False  # another node or worker held the lock: this one did nothing
    messages: int = 0
    refusals: int = 0
    purged_messages: int = 0
    purged_refusals: int = 0
    bundles: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as the CLI prints it."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "node": self.node,
            "skipped": self.skipped,
            "messages": self.messages,
            "refusals": self.refusals,
            "purged_messages": self.purged_messages,
            "purged_refusals": self.purged_refusals,
            "bundles": [str(p) for p in self.bundles],
        }


def check_retention(settings: JournalSettings) -> None:
    """Refuse a retention below three years unless explicitly allowed."""
    if settings.retention_days < 1:
        raise SettingsError(["journal.retention_days: must be at least 1"])
    if settings.retention_days < MIN_RETENTION_DAYS and not settings.allow_short_retention:
        raise SettingsError(
            [
                f"journal.retention_days: {settings.retention_days} is below "
                f"{MIN_RETENTION_DAYS} days (three years, as the ATIGA OCP require); set "
                "journal.allow_short_retention = true to override"
            ]
        )


def _message_line(summary: MessageSummary, view: Any, payload: bytes | None) -> dict[str, Any]:
    return {
        "kind": "message",
        **summary_json(summary),
        "timeline": timeline_json(view),
        "links": [
            {
                "message_id": link.message_id,
                "related_message_id": link.related_message_id,
                "relation": link.relation,
                "at": link.at.isoformat(),
            }
            for link in (view.links if view else ())
        ],
        "payload_base64": base64.b64encode(payload).decode("ascii") if payload else None,
    }


def _refusal_line(refusal: Refusal, body: bytes | None) -> dict[str, Any]:
    return {
        "kind": "refusal",
        **refusal_json(refusal),
        "payload_base64": base64.b64encode(body).decode("ascii") if body else None,
    }


class _Bundle:
    """One gzip JSON-lines archive file, made visible (renamed) only once complete on disk."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.jsonl.gz"
        self._part = directory / f"{name}.jsonl.gz.part"
        fd = os.open(self._part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        self._raw = os.fdopen(fd, "wb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb")

    def write(self, line: dict[str, Any]) -> None:
        self._gzip.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def finish(self) -> Path:
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._part, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return self.path

    def abandon(self) -> None:
        self._gzip.close()
        self._raw.close()
        self._part.unlink(missing_ok=True)


async def run_retention(
    journal: Journal,
    settings: JournalSettings,
    *,
    now: datetime,
    dry_run: bool = False,
    archive_dir: Path | None = None,
    actor: str = "retention-job",
    node: str = "",
) -> RetentionReport:
    """Archive then purge everything older than ``settings.retention_days`` before ``now``,
    unless another node or worker is at it (the report says ``skipped``)."""
    check_retention(settings)
    cutoff = now - timedelta(days=settings.retention_days)
    report = RetentionReport(cutoff=cutoff, dry_run=dry_run, node=node)
    if dry_run:
        return await _pass(journal, settings, report, now=now, archive_dir=archive_dir, actor=actor)
    async with job_locks_of(journal).job_lock(JOB) as held:
        if not held:
            report.skipped = True
            log.info("retention_skipped", node=node, reason="running-elsewhere")
            return report
        return await _pass(journal, settings, report, now=now, archive_dir=archive_dir, actor=actor)


async def _pass(
    journal: Journal,
    settings: JournalSettings,
    report: RetentionReport,
    *,
    now: datetime,
    archive_dir: Path | None,
    actor: str,
) -> RetentionReport:
    cutoff, dry_run = report.cutoff, report.dry_run
    directory = archive_dir if archive_dir is not None else Path(settings.archive_dir)
    log.info("retention_started", cutoff=cutoff.isoformat(), dry_run=dry_run, node=report.node)
    after_message: str | None = None
    after_refusal: str | None = None
    number = 0
    while True:
        messages, after_message = await _page_all(journal, "messages", cutoff, after_message)
        refusals, after_refusal = await _page_all(journal, "refusals", cutoff, after_refusal)
        if not messages and not refusals:
            break
        report.messages += len(messages)
        report.refusals += len(refusals)
        if not dry_run:
            number += 1
            stamp = now.strftime("%Y%m%dT%H%M%SZ")
            bundle = _Bundle(directory, f"journal-archive-{stamp}-{number:04d}")
            try:
                for summary in messages:
                    message_id = summary.record.message_id
                    view = await journal.get(message_id)
                    bundle.write(_message_line(summary, view, await journal.payload(message_id)))
                for refusal, body in refusals:
                    bundle.write(_refusal_line(refusal, body))
                path = bundle.finish()
            except BaseException:
                bundle.abandon()
                raise
            report.bundles.append(path)
            report.purged_messages += await _purge(
                journal.purge_messages, [m.record.message_id for m in messages], cutoff
            )
            report.purged_refusals += await _purge(
                journal.purge_refusals, [r.refusal_id for r, _ in refusals], cutoff
            )
        log.info(
            "retention_progress",
            dry_run=dry_run,
            messages=report.messages,
            refusals=report.refusals,
            purged_messages=report.purged_messages,
            purged_refusals=report.purged_refusals,
            bundle=str(report.bundles[-1]) if report.bundles and not dry_run else None,
        )
    log.info("retention_done", **report.to_json())
    if not dry_run and (report.messages or report.refusals):
        await record_operator_action(
            OperatorAction(
                action="retention-purge",
                operator=f"{actor}@{report.node}" if report.node else actor,
                credential=None,
                target=f"{report.purged_messages} messages, {report.purged_refusals} refusals "
                f"older than {cutoff.isoformat()}",
                reason=f"journal.retention_days = {settings.retention_days}",
                outcome="archived-and-purged",
            ),
            journal=journal,
            at=now,
        )
    return report


async def _page_all(
    journal: Journal, kind: str, cutoff: datetime, after: str | None
) -> tuple[list[Any], str | None]:
    """Up to ``BUNDLE_SIZE`` expired entries of ``kind`` after ``after``; and the new ``after``."""
    found: list[Any] = []
    while len(found) < BUNDLE_SIZE:
        limit = min(PAGE, BUNDLE_SIZE - len(found))
        if kind == "messages":
            page: list[Any] = await journal.expired_messages(cutoff, after=after, limit=limit)
            if page:
                after = page[-1].record.message_id
        else:
            page = await journal.expired_refusals(cutoff, after=after, limit=limit)
            if page:
                after = page[-1][0].refusal_id
        found += page
        if len(page) < limit:
            break
    return found, after


async def _purge(purge: Any, ids: list[str], cutoff: datetime) -> int:
    purged = 0
    for start in range(0, len(ids), PAGE):
        purged += int(await purge(ids[start : start + PAGE], cutoff))
    return purged
