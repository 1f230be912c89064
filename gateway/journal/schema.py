"""What the two SQL backends share besides their tables: parameters out, rows back in.

The tables and statements are in ``gateway.journal.tables``; here a ``MessageRecord`` becomes
statement parameters and a selected row becomes a ``MessageSummary``, the same for both. Only
the encoding of a timestamp differs (``stamp`` and ``when``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.core.states import MessageState
from gateway.errors import JournalSchemaMismatch
from gateway.journal.contract import MessageRecord, MessageSummary
from gateway.journal.tables import SCHEMA_VERSION


def known_params(entry: MessageRecord) -> dict[str, str | None]:
    """Parameters for the ``known`` statement; without a document id the key matches nothing."""
    return {
        "message_id": entry.message_id,
        "sender": entry.sender,
        "document_type": entry.document_type,
        "document_id": entry.document_id,
        "function_code": entry.function_code,
    }


ATTEMPT_STATES = frozenset({MessageState.DELIVERED, MessageState.RETRYING, MessageState.DEAD})
"""Timeline rows that close a delivery attempt and so carry its number when not given."""


def record_values(entry: MessageRecord, stamp: Callable[[datetime], Any]) -> dict[str, Any]:
    """The ``messages`` column values of a record (``tables.RECORD_COLUMNS``), by name.

    ``stamp`` encodes a timestamp the way the backend stores it.
    """
    return {
        "message_id": entry.message_id,
        "sender": entry.sender,
        "receiver": entry.receiver,
        "document_type": entry.document_type,
        "document_id": entry.document_id,
        "function_code": entry.function_code,
        "referenced_message_id": entry.referenced_message_id,
        "test": entry.test,
        "size": entry.size,
        "digest": entry.digest,
        "received_at": stamp(entry.received_at),
    }


def list_filters(
    *,
    state: MessageState | None,
    sender: str | None,
    receiver: str | None,
    test: bool | None,
    before: datetime | None,
    stamp: Callable[[datetime], Any],
) -> dict[str, Any]:
    """The filters given to ``list_messages`` (``tables.LIST_FILTERS``), by name, None left out.

    ``stamp`` encodes a timestamp the way the backend stores it.
    """
    return {
        name: value
        for name, value in (
            ("state", state.value if state is not None else None),
            ("sender", sender),
            ("receiver", receiver),
            ("test", test),
            ("before", stamp(before) if before is not None else None),
        )
        if value is not None
    }


def summary_from_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> MessageSummary:
    """Decode a row selected with ``tables.SUMMARY``; ``when`` decodes a stored timestamp."""
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


def creates_schema(current: int | None, where: str) -> bool:
    """Whether a journal whose schema is at ``current`` (None: no schema yet) needs its tables
    created; ``JournalSchemaMismatch`` for a journal at another version than this gateway's.

    An older journal is not upgraded behind the operator's back: the migration is a step of
    its own (``asw-gateway journal migrate``), taken after a backup.
    """
    if current is None:
        return True
    where = f" {where}" if where else ""
    if current < SCHEMA_VERSION:
        raise JournalSchemaMismatch(
            f"The journal{where} has schema version {current}; this gateway needs version "
            f"{SCHEMA_VERSION}: run asw-gateway journal migrate (after a backup: "
            f"asw-gateway journal backup)."
        )
    if current > SCHEMA_VERSION:
        raise JournalSchemaMismatch(
            f"The journal{where} has schema version {current}; this gateway knows only up to "
            f"{SCHEMA_VERSION}. Run the newer gateway, or restore a backup taken before the "
            f"upgrade."
        )
    return False


def new_journal_id() -> str:
    """A fresh journal identity (``journal_schema.journal_id``)."""
    return uuid.uuid4().hex
