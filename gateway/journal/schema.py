"""What the two SQL backends share: the schema version, column lists and row decoding.

Only the DDL types and the placeholder style differ between SQLite and PostgreSQL; the tables,
columns and the meaning of every column are the same, so they are named once here.

Tables (see docs/journal.md):

- ``journal_schema(version)``: one row; a gateway refuses a journal newer than it knows.
- ``messages``: one row per accepted message: the ``MessageRecord`` columns, the current
  ``state`` and ``state_at``, ``accepted_at``, the number of delivery ``attempts``, the claim's
  ``lease_until`` and the ``last_error_code``. Unique on the message id, and on the business
  key (sender, document type, document id, function code) where a document id exists.
- ``message_states``: the timeline; ``seq`` orders the rows of one message as written.
- ``payloads``: the accepted bytes, apart so that lists and counts never read them.
- ``links``: ``related_message_id`` is the ``relation`` of ``message_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.core.states import MessageState
from gateway.journal.contract import MessageRecord, MessageSummary

SCHEMA_VERSION = 1

PURGE_BATCH = 500
"""Messages deleted per transaction, so a large purge never holds the write lock for long."""

SUMMARY_COLUMNS = (
    "message_id, sender, receiver, document_type, document_id, function_code, "
    "referenced_message_id, test, size, digest, received_at, "
    "state, state_at, accepted_at, attempts, last_error_code"
)

TIMELINE_COLUMNS = "state, at, error_code, detail, attempt"

LINK_COLUMNS = "message_id, related_message_id, relation, at"

KNOWN_SQL = (
    "SELECT message_id, state, accepted_at, digest FROM messages WHERE message_id = {p} OR "
    "(sender = {p} AND document_type = {p} AND document_id = {p} AND function_code = {p})"
)
"""Rows holding a submission's message id or business key; ``{p}`` is the placeholder."""


def known_params(entry: MessageRecord) -> tuple[str | None, ...]:
    """Parameters for ``KNOWN_SQL``; without a document id the key part matches nothing."""
    return (
        entry.message_id,
        entry.sender,
        entry.document_type,
        entry.document_id,
        entry.function_code,
    )


ATTEMPT_STATES = frozenset({MessageState.DELIVERED, MessageState.RETRYING, MessageState.DEAD})
"""Timeline rows that close a delivery attempt and so carry its number when not given."""


def record_values(entry: MessageRecord, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The ``messages`` column values of a record, in ``SUMMARY_COLUMNS`` order (first 11).

    ``stamp`` encodes a timestamp the way the backend stores it.
    """
    return (
        entry.message_id,
        entry.sender,
        entry.receiver,
        entry.document_type,
        entry.document_id,
        entry.function_code,
        entry.referenced_message_id,
        entry.test,
        entry.size,
        entry.digest,
        stamp(entry.received_at),
    )


def summary_from_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> MessageSummary:
    """Decode a row selected with ``SUMMARY_COLUMNS``; ``when`` decodes a stored timestamp."""
    return MessageSummary(
        record=MessageRecord(
            message_id=row[0],
            sender=row[1],
            receiver=row[2],
            document_type=row[3],
            document_id=row[4],
            function_code=row[5],
            referenced_message_id=row[6],
            test=bool(row[7]),
            size=int(row[8]),
            digest=row[9],
            received_at=when(row[10]),
        ),
        state=MessageState(row[11]),
        state_at=when(row[12]),
        accepted_at=when(row[13]),
        attempts=int(row[14]),
        last_error_code=row[15],
    )


def check_transition_target(state: MessageState) -> None:
    """Keep DELIVERING to ``claim_delivery``, which is the only writer that sets a lease.

    A DELIVERING without a lease could be taken by every worker at once.
    """
    if state is MessageState.DELIVERING:
        raise ValueError("DELIVERING is entered through claim_delivery, not transition")


# --- the pull inbox (see contract.InboxJournal) --------------------------------------------------
#
# ``inbox``: one row per message handed to a pull-inbox receiver: the ``receiver`` it waits for,
# ``stored_at``, the current fetch ``lease_until``, the number of ``fetches`` and ``acked_at``.
# Sender, type and size come from ``messages``, the bytes from ``payloads``; the row goes with
# its message when the message is purged (ON DELETE CASCADE). The table is additive: the schema
# version stays 1, and an older gateway simply never reads it.

INBOX_COLUMNS = (
    "i.message_id, i.receiver, m.sender, m.document_type, m.size, i.stored_at, i.fetches, "
    "i.lease_until, i.acked_at"
)
"""What ``contract.inbox_item`` decodes; ``i`` is ``inbox``, ``m`` is ``messages``."""

INBOX_FROM = "inbox i JOIN messages m ON m.message_id = i.message_id"
