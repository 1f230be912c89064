"""The message journal: every message, every state change, payloads, links; one interface.

``open_journal(url)`` picks the backend from the URL:

- ``sqlite:///var/lib/asw/journal.db`` (an absolute path; ``sqlite:journal.db`` is relative),
  optionally ``?synchronous=normal`` (see ``gateway.journal.sqlite`` for what that costs);
- ``postgresql://user@host:5432/db`` with any libpq parameters, plus ``pool_min_size`` and
  ``pool_max_size``.

The PostgreSQL backend is imported only when asked for, so a SQLite deployment does not need
psycopg installed.

``schema_status(url)`` tells a journal's schema version beside this gateway's (for start-up
checks; it reads, never creates); ``migrate(url)`` brings it up (``asw-gateway journal
migrate``). See ``gateway.journal.migrations``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gateway.core.lease import ClaimResult
from gateway.journal.contract import (
    DEFAULT_LEASE,
    AcceptOutcome,
    AcceptResult,
    AuditEntry,
    AuditJournal,
    BusinessKey,
    CountRow,
    Counts,
    Failure,
    InboxAck,
    InboxDocument,
    InboxItem,
    InboxJournal,
    Journal,
    JournalStatus,
    Link,
    MessageRecord,
    MessageSummary,
    MessageView,
    OutcomeJournal,
    Outcomes,
    StateChange,
    audit_of,
    business_key,
    inbox_of,
    outcomes_of,
)
from gateway.journal.migrations import SchemaStatus, migrate, schema_status
from gateway.journal.sqlite import DEFAULT_OP_TIMEOUT_SECONDS, SqliteJournal

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_OP_TIMEOUT_SECONDS",
    "AcceptOutcome",
    "AcceptResult",
    "AuditEntry",
    "AuditJournal",
    "BusinessKey",
    "ClaimResult",
    "CountRow",
    "Counts",
    "Failure",
    "InboxAck",
    "InboxDocument",
    "InboxItem",
    "InboxJournal",
    "Journal",
    "JournalStatus",
    "Link",
    "MessageRecord",
    "MessageSummary",
    "MessageView",
    "OutcomeJournal",
    "Outcomes",
    "SchemaStatus",
    "SqliteJournal",
    "StateChange",
    "audit_of",
    "business_key",
    "inbox_of",
    "migrate",
    "open_journal",
    "outcomes_of",
    "schema_status",
]


async def open_journal(url: str, *, op_timeout: float = DEFAULT_OP_TIMEOUT_SECONDS) -> Journal:
    """Open the journal a URL names, creating its schema if needed.

    ``op_timeout`` bounds every journal operation (seconds): past it the operation fails with
    ``journal-unavailable`` (503, retryable) instead of holding a client.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise ValueError(
                f"a sqlite journal URL has no host: use sqlite:///absolute/path.db, got {url!r}"
            )
        if not parts.path:
            raise ValueError(f"the sqlite journal URL names no file: {url!r}")
        options = parse_qs(parts.query)
        synchronous = options.get("synchronous", ["FULL"])[-1]
        return await SqliteJournal.open(parts.path, synchronous=synchronous, op_timeout=op_timeout)
    if parts.scheme in ("postgresql", "postgres"):
        # Imported here so that a SQLite deployment needs no psycopg.
        from gateway.journal.postgres import PostgresJournal  # noqa: PLC0415

        return await PostgresJournal.open(url, op_timeout=op_timeout)
    raise ValueError(f"unknown journal URL scheme {parts.scheme!r} (sqlite or postgresql)")
