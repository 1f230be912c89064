"""What every journal backend promises: the ``Journal`` protocol and the values it trades in.

The journal is the gateway's memory of every message: one row per message, one row per state
change (the timeline), the payload for replay and audit, and links between a document and its
receipt or answer. SQLite and PostgreSQL implement the same protocol and pass the same contract
suite (``tests/journal``), so the shells never know which one they talk to.

The journal never reads the clock: every write takes ``at`` from the caller, so tests pin time
and the timeline shows the instant the caller observed, not when a busy database got to it.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from gateway.core.lease import ClaimResult
from gateway.core.registers import RegisterEntry
from gateway.core.states import WAITING_STATES, MessageState

DEFAULT_LEASE = timedelta(minutes=5)
"""How long a delivery claim holds; it must outlast the slowest adapter hand-over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStatus:
    """Whether a journal can write now, for readiness checks (``status()`` on both backends).

    ``state`` is ``ok``, ``read-only`` (the file or the database refuses writes for now),
    ``replaced`` (the SQLite file was deleted or replaced: a restart is needed) or
    ``unavailable`` (cannot be reached, stalled, full); ``reason`` says why, for an operator.
    """

    state: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the journal can write."""
        return self.state == "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    """The facts about an accepted message that never change; taken from the header.

    ``sender`` and ``receiver`` are the routing identities (country code, or country code and
    NSW party id as the routing table spells them). ``document_id`` is the business document's
    own number (e.g. the Form D reference number); receipts and some answers have none.
    """

    message_id: str
    sender: str
    receiver: str
    document_type: str
    document_id: str | None
    function_code: str
    referenced_message_id: str | None
    test: bool
    size: int
    digest: str
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessKey:
    """What makes a document the same document whatever message carries it.

    The issue names (sender country, document id, function code); the document type is part of
    the key too, because an ACDD may well carry the number of the Form D it accompanies.
    """

    sender: str
    document_type: str
    document_id: str
    function_code: str


class AcceptResult(enum.Enum):
    """How ``record_accepted`` answered."""

    ACCEPTED = "accepted"
    """A new message: its row, RECEIVED and ACCEPTED and the payload are written."""
    RESUBMITTED = "resubmitted"
    """The message id is known: nothing is written, the first answer is returned."""
    CONFLICT = "conflict"
    """The business key belongs to another message id: nothing is written (HTTP 409)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptOutcome:
    """The answer to one submission, the same every time the same message id comes back.

    For ``RESUBMITTED``, ``state`` tells the ingest what to do: still ACCEPTED means the first
    publish was never confirmed, so publish again before answering 202. ``same_payload`` is
    False when a different document arrives under a known message id; the ingest decides.
    For ``CONFLICT``, ``message_id`` is the *original* message that owns the business key.
    """

    result: AcceptResult
    message_id: str
    state: MessageState
    accepted_at: datetime
    same_payload: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """One row of a message's timeline."""

    state: MessageState
    at: datetime
    error_code: str | None = None
    detail: str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A relation between two messages, e.g. a document and its receipt or its answer.

    Read it as "``related_message_id`` is the ``relation`` of ``message_id``".
    """

    message_id: str
    related_message_id: str
    relation: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageSummary:
    """A message and where it is now, without its history; what lists return."""

    record: MessageRecord
    state: MessageState
    state_at: datetime
    accepted_at: datetime
    attempts: int
    last_error_code: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageView:
    """A message with its whole timeline and links; what ``GET /v1/messages/{id}`` shows."""

    summary: MessageSummary
    timeline: tuple[StateChange, ...]
    links: tuple[Link, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CountRow:
    """How many messages to one receiver are in one state."""

    receiver: str
    state: MessageState
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Message counts for the operator's overview."""

    rows: tuple[CountRow, ...]

    def by_state(self) -> Mapping[MessageState, int]:
        """Totals per state over every receiver."""
        totals: dict[MessageState, int] = {}
        for row in self.rows:
            totals[row.state] = totals.get(row.state, 0) + row.count
        return totals


# --- operator views: refusals, search with cursors, retention (issue 16) -------------------

REFUSAL_STATES = frozenset({MessageState.REJECTED, MessageState.DUPLICATE})
"""The states a refusal is journalled with: DUPLICATE for a business key taken, else REJECTED."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """One refused submission, as journalled: who called, what was readable, and why.

    Header facts are None where the document could not be read that far. ``payload_kept`` says
    whether the bytes were kept (only up to ``journal.refusal_payload_max_bytes``; the
    ``digest`` identifies them; None when the body never arrived whole, e.g. too large).
    """

    refusal_id: str
    state: MessageState
    at: datetime
    channel: str
    caller: str | None = None
    message_id: str | None = None
    sender: str | None = None
    receiver: str | None = None
    document_type: str | None = None
    document_id: str | None = None
    test: bool | None = None
    size: int
    digest: str | None
    error_code: str
    status: int
    detail: str | None = None
    findings: tuple[Mapping[str, Any], ...] = ()
    payload_kept: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalCount:
    """How many refusals one sender (None: unreadable) got with one code and state."""

    sender: str | None
    error_code: str
    state: MessageState
    count: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the ordering time and the id of its last entry (keyset paging)."""

    at: datetime
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageQuery:
    """A search over messages; every field given narrows it (None: any).

    ``party`` keeps messages the party sent or receives. ``order`` is ``received`` (by
    ``received_at``) or ``changed`` (by the last state change: for dead letters, the time of
    death); newest first, ties broken by message id, so paging with ``after`` is stable.
    ``since`` (inclusive) and ``until`` (exclusive) bound the ordering time.
    """

    message_id: str | None = None
    document_id: str | None = None
    document_type: str | None = None
    sender: str | None = None
    receiver: str | None = None
    party: str | None = None
    state: MessageState | None = None
    error_code: str | None = None
    test: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: str = "received"
    after: Cursor | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalQuery:
    """A search over refusals, newest first by ``at`` (ties by refusal id); like ``MessageQuery``.

    ``party`` keeps refusals the party caused: as the claimed sender or as the caller.
    """

    message_id: str | None = None
    document_id: str | None = None
    document_type: str | None = None
    sender: str | None = None
    receiver: str | None = None
    party: str | None = None
    state: MessageState | None = None
    error_code: str | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: Cursor | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineQuery:
    """The messages whose OCP time limits an operator lists: oldest first by ``received_at``
    (ties by message id), after the cursor ``after``, at most ``limit``.

    ``relations`` maps each document type wanted to the relations that meet or start its
    limits: only links of those are read. With ``open_only`` a message is listed only while it
    lacks a link of one of them (some limit is unmet). ``document_type`` and ``party`` (sender
    or receiver) narrow it; ``received_before`` keeps messages received before that time (a
    limit of N days cannot be overdue sooner).
    """

    relations: Mapping[str, tuple[str, ...]]
    open_only: bool = False
    document_type: str | None = None
    party: str | None = None
    received_before: datetime | None = None
    after: Cursor | None = None
    limit: int = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineFacts:
    """What a message's deadlines are derived from: the message, the time of its first
    DELIVERED row (None: not delivered yet) and its own links as (relation, at), oldest first."""

    summary: MessageSummary
    delivered_at: datetime | None
    links: tuple[tuple[str, datetime], ...]


class OperatorJournal(Protocol):
    """What operators read and retention deletes; both backends implement it (``queries``)."""

    async def deadline_facts(self, query: DeadlineQuery) -> list[DeadlineFacts]:
        """One page of the messages ``query`` selects with their deadline facts, in one read."""
        ...

    async def record_refusal(self, refusal: Refusal, payload: bytes | None) -> None:
        """Journal one refused submission; ``payload`` None keeps the digest alone."""
        ...

    async def get_refusal(self, refusal_id: str) -> Refusal | None:
        """One refusal, or None."""
        ...

    async def refusal_payload(self, refusal_id: str) -> bytes | None:
        """The refused bytes when they were kept, else None."""
        ...

    async def list_refusals(self, query: RefusalQuery) -> list[Refusal]:
        """Refusals matching ``query``, newest first, at most ``query.limit``."""
        ...

    async def refusal_counts(self, *, include_test: bool = False) -> list[RefusalCount]:
        """Refusals per sender, code and state (refusals of unreadable test flag count)."""
        ...

    async def search_messages(self, query: MessageQuery) -> list[MessageSummary]:
        """Messages matching ``query`` in its order, at most ``query.limit``."""
        ...

    async def expired_messages(
        self, cutoff: datetime, *, after: str | None, limit: int
    ) -> list[MessageSummary]:
        """Messages whose last change is before ``cutoff``, by message id after ``after``."""
        ...

    async def expired_refusals(
        self, cutoff: datetime, *, after: str | None, limit: int
    ) -> list[tuple[Refusal, bytes | None]]:
        """Refusals (with kept bytes) journalled before ``cutoff``, by id after ``after``."""
        ...

    async def purge_messages(self, message_ids: list[str], cutoff: datetime) -> int:
        """Delete these messages (with timeline, payload, links, inbox) if still older than
        ``cutoff``; a message that moved since is kept. Returns how many went."""
        ...

    async def purge_refusals(self, refusal_ids: list[str], cutoff: datetime) -> int:
        """Delete these refusals if journalled before ``cutoff``; returns how many went."""
        ...


class Journal(OperatorJournal, Protocol):
    """The message store. Every method is one transaction; every write is durable on return."""

    async def record_accepted(
        self, entry: MessageRecord, payload: bytes, *, at: datetime
    ) -> AcceptOutcome:
        """Record a new accepted message, or give back the first answer for a known one.

        Atomically: a known message id returns ``RESUBMITTED`` with the first acceptance; a
        business key held by another message id returns ``CONFLICT`` naming it; otherwise the
        message row, RECEIVED (at ``entry.received_at``), ACCEPTED (at ``at``) and the payload
        are written together. ``entry.size`` and ``entry.digest`` must describe ``payload``.
        """
        ...

    async def transition(
        self,
        message_id: str,
        state: MessageState,
        *,
        at: datetime,
        error_code: str | None = None,
        detail: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Report ``state`` for a message; True if a timeline row was written.

        False means the report was a repeat or arrived late and changed nothing (see
        ``gateway.core.states``). Raises ``InvalidTransition`` for a forbidden move and
        ``NotFound`` for an unknown message id.
        """
        ...

    async def claim_delivery(
        self,
        message_id: str,
        *,
        at: datetime,
        lease: timedelta = DEFAULT_LEASE,
        digest: str | None = None,
    ) -> ClaimResult:
        """Take the right to hand a message over, for ``lease`` from ``at``.

        ``GRANTED`` goes to exactly one caller across every task, process and node while the
        lease runs: the message moves to DELIVERING, ``attempts`` grows by one and a timeline
        row records it. A message in DELIVERING whose lease has run out (its worker crashed
        between claim and ``mark_delivered``) can be claimed again. With ``digest`` (SHA-256
        hex of the bytes about to be handed over) the claim is granted only for the bytes the
        journal accepted, in the same step; other bytes get ``OTHER_BYTES``. See
        ``ClaimResult`` for what every other answer asks the worker to do.
        """
        ...

    async def mark_delivered(self, message_id: str, *, at: datetime) -> bool:
        """Record the hand-over; False if the message was already delivered (a no-op)."""
        ...

    async def get(self, message_id: str) -> MessageView | None:
        """The message with its timeline (in the order written) and its links, or None."""
        ...

    async def payload(self, message_id: str) -> bytes | None:
        """The bytes as accepted, for replay and audit, or None once purged or unknown."""
        ...

    async def link(
        self, message_id: str, related_message_id: str, relation: str, *, at: datetime
    ) -> bool:
        """Record that ``related_message_id`` is the ``relation`` of ``message_id``.

        ``relation`` is a slug such as ``receipt`` or ``response``. Returns False if the link
        exists already. Raises ``NotFound`` if ``message_id`` is unknown; the related message
        may live in another node's journal.
        """
        ...

    async def register_add(self, entry: RegisterEntry, *, at: datetime) -> bool:
        """Keep one register update (issue 18), recorded ``at``; False if it was kept already.

        Raises ``NotFound`` if ``entry.message_id`` is unknown (the entry goes with it when
        it is purged).
        """
        ...

    async def register_history(
        self, register: str, country: str, record_key: str | None = None
    ) -> list[RegisterEntry]:
        """A country's register entries (only ``record_key``'s when given), in recording order."""
        ...

    async def list_messages(
        self,
        *,
        state: MessageState | None = None,
        sender: str | None = None,
        receiver: str | None = None,
        test: bool | None = None,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[MessageSummary]:
        """Messages newest first (by ``received_at``), filtered; ``before`` pages backwards.

        ``test=None`` lists both test and live messages.
        """
        ...

    async def counts(self, *, include_test: bool = False) -> Counts:
        """Messages per receiver and state; test messages only if asked for."""
        ...

    async def purge_older_than(self, cutoff: datetime) -> int:
        """Delete every message whose last state change is before ``cutoff``; return how many.

        Its timeline, payload and links go with it. The age is taken from the last change so
        that a message still moving (or recently replayed) is never purged under its worker.
        """
        ...

    async def status(self) -> JournalStatus:
        """Whether the journal can write now, and why not (for ``/readyz``)."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the journal cannot be used afterwards."""
        ...


def as_utc(moment: datetime) -> datetime:
    """Refuse naive datetimes and normalise aware ones to UTC.

    A naive timestamp in an audit trail is a guess; the mistake is caught at the door.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the journal needs timezone-aware datetimes, got {moment!r}")
    return moment.astimezone(UTC)


def check_payload(entry: MessageRecord, payload: bytes) -> None:
    """Make sure the record describes the payload it is stored with.

    The size and digest are what auditors compare against; a mismatch is a bug upstream.
    """
    if entry.size != len(payload):
        raise ValueError(f"size {entry.size} does not match a payload of {len(payload)} bytes")
    if entry.digest != hashlib.sha256(payload).hexdigest():
        raise ValueError("digest is not the sha256 of the payload")


def business_key(entry: MessageRecord) -> BusinessKey | None:
    """The record's business key, or None for documents without their own number."""
    if entry.document_id is None:
        return None
    return BusinessKey(
        sender=entry.sender,
        document_type=entry.document_type,
        document_id=entry.document_id,
        function_code=entry.function_code,
    )


def settle_known(
    entry: MessageRecord, rows: list[tuple[str, MessageState, datetime, str]]
) -> AcceptOutcome | None:
    """Answer a submission from the rows that hold its message id or its business key.

    ``rows`` are (message_id, state, accepted_at, digest), read in one statement so that the
    message id and the business key are judged against the same snapshot: a concurrent
    submission of the same message id must read as a resubmission, never as a conflict with
    itself. None means the submission is new.
    """
    for message_id, state, accepted_at, digest in rows:
        if message_id == entry.message_id:
            return AcceptOutcome(
                result=AcceptResult.RESUBMITTED,
                message_id=message_id,
                state=state,
                accepted_at=accepted_at,
                same_payload=digest == entry.digest,
            )
    for message_id, state, accepted_at, _ in rows:
        return AcceptOutcome(
            result=AcceptResult.CONFLICT,
            message_id=message_id,
            state=state,
            accepted_at=accepted_at,
            same_payload=False,
        )
    return None


# --- the pull inbox -----------------------------------------------------------------------------
#
# Some national single windows sit behind firewalls and cannot be pushed to; they pull. The
# ``pull-inbox`` adapter hands a document over by putting its message in the receiver's inbox
# (``inbox_store``); the NSW lists what waits (``inbox_waiting``), fetches a document, which
# starts a lease (``inbox_fetch``), and acknowledges it (``inbox_ack``). A fetched document that
# is not acknowledged before its lease runs out waits again. While a lease lives nobody else gets
# the document (two pollers of one party never both fetch it). A document fetched but not
# acknowledged for longer than the party's escalation age is dead-lettered (``inbox_escalate``:
# DEAD with ``pickup-not-acknowledged``), for an operator to look at. The payload is the one the
# journal already holds; the inbox only adds one small row per message.


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    """One document in a receiving party's inbox, without its bytes."""

    message_id: str
    receiver: str
    sender: str
    document_type: str
    size: int
    stored_at: datetime
    available_since: datetime
    """When it became fetchable: ``stored_at``, or the end of the last lease that ran out."""
    fetches: int
    lease_until: datetime | None
    acked_at: datetime | None
    retransmission_of: str | None = None
    """Set on a re-transmitted e-Form D (OCP Rule 29(3)): its message id. ``message_id`` is then
    the request's, the entry's own key; sender, type, size and bytes are the e-Form D's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxDocument:
    """A fetched inbox document: the item, now under lease, and the bytes as accepted."""

    item: InboxItem
    payload: bytes


class InboxAck(enum.Enum):
    """The answer to ``inbox_ack``."""

    ACKED = "acked"
    """Acknowledged now."""
    ALREADY_ACKED = "already-acked"
    """Acknowledged before (a repeated ack); nothing changed."""
    UNKNOWN = "unknown"
    """No such document in this receiver's inbox (or it belongs to another party)."""


class InboxJournal(Protocol):
    """The inbox part of the journal; both backends implement it beside ``Journal``."""

    async def inbox_store(
        self,
        message_id: str,
        *,
        receiver: str,
        at: datetime,
        retransmission_of: str | None = None,
    ) -> bool:
        """Put a journalled message in ``receiver``'s inbox; False if it was there already.

        With ``retransmission_of`` the entry is the e-Form D of that id sent again on request
        ``message_id`` (OCP Rule 29(3)): its own entry, fetched and acknowledged on its own, the
        e-Form D's first entry untouched. Idempotent: a message stored before (waiting, leased
        or acknowledged) is left as it is, so a hand-over repeated after a crash never shows the
        receiver a second copy. Raises
        ``NotFound`` if the journal has no such message.
        """
        ...

    async def inbox_waiting(
        self, receiver: str, *, at: datetime, limit: int = 100
    ) -> list[InboxItem]:
        """Documents ``receiver`` may fetch at ``at``: not acknowledged, no live lease; oldest
        first."""
        ...

    async def inbox_fetch(
        self, receiver: str, message_id: str, *, at: datetime, lease: timedelta
    ) -> InboxDocument | None:
        """The document with a lease until ``at + lease``, taken atomically.

        None when ``receiver`` has no such unacknowledged document, or when a lease on it still
        lives (pickup is exclusive: a second poller never gets the same document), and for
        another party's document too (never an error that would reveal it exists).
        """
        ...

    async def inbox_escalate(
        self, receiver: str, *, at: datetime, older_than: timedelta
    ) -> list[str]:
        """Dead-letter ``receiver``'s documents fetched but never acknowledged, stored more
        than ``older_than`` before ``at`` and with no live lease; return their ids.

        Each leaves the inbox and moves to DEAD with ``pickup-not-acknowledged`` (if it is not
        delivered or dead already), in one transaction: an operator sees it among the dead
        letters and may replay it.
        """
        ...

    async def inbox_ack(self, receiver: str, message_id: str, *, at: datetime) -> InboxAck:
        """Acknowledge a document: it leaves the inbox for good."""
        ...


def inbox_item(
    row: tuple[object, ...], when: Callable[[Any], datetime], *, at: datetime | None = None
) -> InboxItem:
    """Decode a row selected with ``schema.INBOX_COLUMNS``; ``at`` computes availability."""
    stored_at = when(row[5])
    lease_until = when(row[7]) if row[7] is not None else None
    available = stored_at
    if lease_until is not None and (at is None or lease_until <= at):
        available = max(stored_at, lease_until)
    return InboxItem(
        message_id=str(row[0]),
        receiver=str(row[1]),
        sender=str(row[2]),
        document_type=str(row[3]),
        size=int(str(row[4])),
        stored_at=stored_at,
        available_since=available,
        fetches=int(str(row[6])),
        lease_until=lease_until,
        acked_at=when(row[8]) if row[8] is not None else None,
        retransmission_of=str(row[9]) if row[9] is not None else None,
    )


PICKUP_NOT_ACKNOWLEDGED = "pickup-not-acknowledged"
"""The error code of a pull-inbox document escalated by ``inbox_escalate``."""

ESCALATABLE = WAITING_STATES
"""States an unacknowledged inbox document may be escalated from (not delivered, not dead)."""


def pickup_detail(fetches: object) -> str:
    """The timeline detail of an escalated inbox document, for an operator."""
    return (
        f"The receiver fetched this document {fetches} time(s) from its pull inbox but never "
        "acknowledged it in time; check with the receiver, then replay it if needed."
    )


def inbox_of(journal: object) -> InboxJournal:
    """The inbox side of a journal; both backends have one. Raises ``TypeError`` otherwise."""
    for name in ("inbox_store", "inbox_waiting", "inbox_fetch", "inbox_ack", "inbox_escalate"):
        if not callable(getattr(journal, name, None)):
            raise TypeError(f"{type(journal).__name__} has no pull inbox ({name} is missing)")
    return journal  # type: ignore[return-value]


# --- the audit log -------------------------------------------------------------------------------
#
# Every operator action (replay, discard, key change, ...) and every view of a stored document
# is appended here: who (the operator's name or the party), with which role and key, when, what,
# on which target and why. Nothing ever updates or deletes a row.


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One row of the audit log; ``seq`` is given by the journal (0 before it is written)."""

    at: datetime
    actor: str
    role: str | None
    key_id: str | None
    action: str
    target: str | None
    reason: str | None
    detail: str | None
    seq: int = 0


class AuditJournal(Protocol):
    """The audit part of the journal; both backends implement it beside ``Journal``."""

    async def audit_append(self, entry: AuditEntry) -> int:
        """Append ``entry`` (its ``seq`` is ignored); return the ``seq`` it was given."""
        ...

    async def audit_list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Rows newest first (by ``seq``), filtered; ``before_seq`` pages backwards."""
        ...


def audit_filters(
    *, actor: str | None, action: str | None, target: str | None, before_seq: int | None
) -> dict[str, Any]:
    """The filters given to ``audit_list`` (``tables.AUDIT_FILTERS``), by name, None left out."""
    given = {"actor": actor, "action": action, "target": target, "before_seq": before_seq}
    return {name: value for name, value in given.items() if value is not None}


def audit_params(entry: AuditEntry, stamp: Callable[[datetime], Any]) -> dict[str, Any]:
    """The ``audit_append`` parameters of an entry; ``stamp`` encodes its time."""
    return {
        "at": stamp(entry.at),
        "actor": entry.actor,
        "role": entry.role,
        "key_id": entry.key_id,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "detail": entry.detail,
    }


def audit_entry(row: tuple[Any, ...], when: Callable[[Any], datetime]) -> AuditEntry:
    """Decode a row selected with ``tables.audit_statement``."""
    return AuditEntry(
        seq=int(row[0]),
        at=when(row[1]),
        actor=str(row[2]),
        role=row[3],
        key_id=row[4],
        action=str(row[5]),
        target=row[6],
        reason=row[7],
        detail=row[8],
    )


def audit_of(journal: object) -> AuditJournal:
    """The audit side of a journal; both backends have one. Raises ``TypeError`` otherwise."""
    for name in ("audit_append", "audit_list"):
        if not callable(getattr(journal, name, None)):
            raise TypeError(f"{type(journal).__name__} has no audit log ({name} is missing)")
    return journal  # type: ignore[return-value]


# --- jobs one node runs at a time ---------------------------------------------------------------
#
# Housekeeping (retention) runs on every node and in every worker that keeps house; on a shared
# journal exactly one pass may run at a time. The journal itself hands out the right to run: a
# PostgreSQL advisory lock held for the pass, or, for SQLite (one node, several workers), an
# exclusive lock on a file beside the database. Both go when their holder dies.

JOB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
"""What a job's name may be (it becomes part of a lock key or a file name)."""


class JobLocks(Protocol):
    """The right to run a job alone on this journal; both backends implement it."""

    def job_lock(self, job: str) -> AbstractAsyncContextManager[bool]:
        """Enter to try for ``job``'s lock without waiting: True (held until the exit) when it
        was free, False when another process or node holds it."""
        ...


def job_locks_of(journal: object) -> JobLocks:
    """The job-lock side of a journal; both backends have one. Raises ``TypeError`` otherwise."""
    if not callable(getattr(journal, "job_lock", None)):
        raise TypeError(f"{type(journal).__name__} has no job locks (job_lock is missing)")
    return journal  # type: ignore[return-value]


def check_job_name(job: str) -> str:
    """``job`` when it is a valid job name; ``ValueError`` otherwise."""
    if not JOB_NAME.match(job):
        raise ValueError(f"not a job name: {job!r}")
    return job


# --- delivery outcomes per partner ----------------------------------------------------------------
#
# Partner health is judged from what happened to deliveries, not from the breaker alone: how
# many attempts to each receiver succeeded and failed in a window, the last success, the last
# failure and since when the failures have run (``gateway.core.partner_health`` judges).


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One failed delivery attempt: when, the error code and the detail."""

    at: datetime
    error_code: str | None
    detail: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcomes:
    """What deliveries to one receiver did since the start of the window."""

    receiver: str
    delivered: int = 0
    failed: int = 0
    last_success: datetime | None = None
    last_failure: Failure | None = None
    failing_since: datetime | None = None
    """The first failure after the last success (when failures are the latest outcome)."""


class OutcomeJournal(Protocol):
    """The delivery-outcome part of the journal; both backends implement it."""

    async def delivery_outcomes(
        self, *, since: datetime, failures: int = 500
    ) -> dict[str, Outcomes]:
        """Per receiver, the delivery attempts that ended since ``since``.

        ``failures`` bounds how many of the newest failures are read to find the last one
        and since when they have run.
        """
        ...


def outcomes_from_rows(
    counts: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
    when: Callable[[Any], datetime],
) -> dict[str, Outcomes]:
    """Decode the ``outcome_counts`` and ``outcome_failures`` rows (failures newest first)."""
    found: dict[str, dict[str, Any]] = {}
    for receiver, state, count, latest in counts:
        row = found.setdefault(str(receiver), {"delivered": 0, "failed": 0})
        if state == MessageState.DELIVERED.value:
            row["delivered"] += int(count)
            row["last_success"] = when(latest)
        else:
            row["failed"] += int(count)
    for receiver, at, error_code, detail in failures:
        row = found.setdefault(str(receiver), {"delivered": 0, "failed": 0})
        moment = when(at)
        if "last_failure" not in row:
            row["last_failure"] = Failure(at=moment, error_code=error_code, detail=detail)
        success = row.get("last_success")
        if success is None or moment > success:
            row["failing_since"] = moment  # rows come newest first: the last one kept is oldest
    return {receiver: Outcomes(receiver=receiver, **row) for receiver, row in found.items()}


def outcomes_of(journal: object) -> OutcomeJournal:
    """The outcome side of a journal; both backends have one. Raises ``TypeError`` otherwise."""
    if not callable(getattr(journal, "delivery_outcomes", None)):
        raise TypeError(f"{type(journal).__name__} has no delivery outcomes")
    return journal  # type: ignore[return-value]


def register_params(entry: RegisterEntry, at: Any) -> dict[str, Any]:
    """The ``register_entries`` row of ``entry``, ``recorded_at`` given as the backend stores it."""
    return {
        "register": entry.register,
        "country": entry.country,
        "record_key": entry.record_key,
        "entry_id": entry.entry_id,
        "action": entry.action,
        "effective_date": entry.effective_date.isoformat(),
        "message_id": entry.message_id,
        "recorded_at": at,
        "body": entry.body(),
    }


def register_entry_from_row(row: Any, when: Callable[[Any], datetime]) -> RegisterEntry:
    """A ``RegisterEntry`` from a ``register_history`` row (columns as ``REGISTER_COLUMNS``);
    ``when`` reads the backend's timestamp."""
    record, reason = RegisterEntry.parse_body(row[0], row[8])
    return RegisterEntry(
        register=row[0],
        country=row[1],
        record_key=row[2],
        entry_id=row[3],
        action=row[4],
        effective_date=date.fromisoformat(row[5]),
        record=record,
        reason=reason,
        message_id=row[6],
        recorded_at=when(row[7]),
    )
