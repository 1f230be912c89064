"""The message journal: every message, every state change, payloads, links; one interface.

``open_journal(url)`` picks the backend from the URL:

- ``sqlite:///var/lib/asw/journal.db`` (an absolute path; ``sqlite:journal.db`` is relative),
  optionally ``?synchronous=normal`` (see ``gateway.journal.sqlite`` for what that costs);
- ``postgresql://user@host:5432/db`` with any libpq parameters, plus ``pool_min_size`` and
  ``pool_max_size``.

The PostgreSQL backend is imported only when asked for, so a SQLite deployment does not need
psycopg installed.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gateway.core.lease import ClaimResult
from gateway.journal.contract import (
    DEFAULT_LEASE,
    AcceptOutcome,
    AcceptResult,
    BusinessKey,
    CountRow,
    Counts,
    InboxAck,
    InboxDocument,
    InboxItem,
    InboxJournal,
    Journal,
    Link,
    MessageRecord,
    MessageSummary,
    MessageView,
    StateChange,
    business_key,
    inbox_of,
)
from gateway.journal.sqlite import SqliteJournal

__all__ = [
    "DEFAULT_LEASE",
    "AcceptOutcome",
    "AcceptResult",
    "BusinessKey",
    "ClaimResult",
    "CountRow",
    "Counts",
    "InboxAck",
    "InboxDocument",
    "InboxItem",
    "InboxJournal",
    "Journal",
    "Link",
    "MessageRecord",
    "MessageSummary",
    "MessageView",
    "SqliteJournal",
    "StateChange",
    "business_key",
    "inbox_of",
    "open_journal",
]


async def open_journal(url: str) -> Journal:
    """Open the journal a URL names, creating its schema if needed."""
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
        return await SqliteJournal.open(parts.path, synchronous=synchronous)
    if parts.scheme in ("postgresql", "postgres"):
        # Imported here so that a SQLite deployment needs no psycopg.
        from gateway.journal.postgres import PostgresJournal  # noqa: PLC0415

        return await PostgresJournal.open(url)
    raise ValueError(f"unknown journal URL scheme {parts.scheme!r} (sqlite or postgresql)")
