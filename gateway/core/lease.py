"""The claim-and-lease rule: who may hand a message over, decided beside the state table.

A delivery worker asks the journal for the right to hand a message over (``claim_delivery``).
Whether it gets it depends only on the message's current state, the lease a previous claim
left, whether the bytes offered are the ones accepted, and the caller's clock; this module says
how, as one pure function (``claim``). The journal backends do not decide: the SQL that takes a
claim in one atomic step is generated from ``grant_states`` below, and when it takes nothing the
backend reads the row and asks ``claim`` why, through ``refused`` (tests/core/test_states.py
checks every case; tests/journal checks both journals against ``claim``).

    state                          lease          bytes     answer
    ACCEPTED, QUEUED, RETRYING     any            same      GRANTED
    DELIVERING                     run out/none   same      GRANTED (a new attempt)
    DELIVERING                     still runs     any       BUSY
    either grantable row above     (as above)     other     OTHER_BYTES
    DELIVERED, RECEIPTED, ANSWERED any            any       DELIVERED
    DEAD, DISCARDED, REJECTED,     any            any       NOT_DELIVERABLE
    DUPLICATE
    (no such message)                                       UNKNOWN
"""

from __future__ import annotations

import enum
from datetime import datetime

from gateway.core.states import CLAIMABLE_STATES, DELIVERED_STATES, MessageState


class ClaimResult(enum.Enum):
    """The answer to ``claim_delivery``; each member says what the worker must do next."""

    GRANTED = "granted"
    """Hand the document over now, then ``mark_delivered`` and ack."""
    DELIVERED = "delivered"
    """Already delivered (a redelivery): ack without handing over again."""
    BUSY = "busy"
    """Another worker holds a live lease: do not ack into the void, send to a retry step."""
    NOT_DELIVERABLE = "not-deliverable"
    """Parked, rejected or never queued for good: ack and drop this copy."""
    UNKNOWN = "unknown"
    """The journal never saw this message id: dead-letter it."""
    OTHER_BYTES = "other-bytes"
    """The bytes offered are not the ones the journal accepted (their digest differs): refuse
    to hand them over and dead-letter them."""

    @property
    def granted(self) -> bool:
        """True only for the one caller that may hand the document over."""
        return self is ClaimResult.GRANTED


def lease_over(lease_until: datetime | None, now: datetime) -> bool:
    """True when no lease holds the message at ``now`` (none was taken, or it has run out)."""
    return lease_until is None or lease_until <= now


def claim(
    state: MessageState | None,
    *,
    lease_until: datetime | None,
    now: datetime,
    same_bytes: bool = True,
) -> ClaimResult:
    """Decide a claim on a message in ``state`` (None: unknown) at ``now``.

    ``same_bytes`` is False when the caller offered a digest other than the accepted one.
    ``OTHER_BYTES`` comes only where the claim would have been granted but for the bytes; a
    copy with other bytes of a delivered message, or of one another worker is handing over, is
    answered as any copy.
    """
    if state is None:
        return ClaimResult.UNKNOWN
    if state in DELIVERED_STATES:
        return ClaimResult.DELIVERED
    if state is MessageState.DELIVERING:
        if not lease_over(lease_until, now):
            return ClaimResult.BUSY
    elif state not in CLAIMABLE_STATES:
        return ClaimResult.NOT_DELIVERABLE
    return ClaimResult.GRANTED if same_bytes else ClaimResult.OTHER_BYTES


def refused(answer: ClaimResult) -> ClaimResult:
    """The answer to a claim the journal's atomic statement did not take.

    ``answer`` is what ``claim`` says about the row as read after that statement. GRANTED
    there means the row moved between the statement and the read (another worker moved it
    on, or the statement and this rule disagree): nothing was taken, so the caller must not
    hand over; BUSY sends its copy to a retry step.
    """
    return ClaimResult.BUSY if answer is ClaimResult.GRANTED else answer


def grant_states() -> tuple[frozenset[MessageState], frozenset[MessageState]]:
    """The states a claim takes outright, and those it takes only once no lease holds them.

    Read off ``claim`` by asking it about every state with a live lease and with none; the
    journals' atomic claim statements are written from these two sets, so the SQL grants
    exactly where ``claim`` does.
    """
    moment = datetime.min
    outright: set[MessageState] = set()
    after_lease: set[MessageState] = set()
    for state in MessageState:
        live = claim(state, lease_until=datetime.max, now=moment) is ClaimResult.GRANTED
        free = claim(state, lease_until=None, now=moment) is ClaimResult.GRANTED
        if live and free:
            outright.add(state)
        elif free:
            after_lease.add(state)
    return frozenset(outright), frozenset(after_lease)
