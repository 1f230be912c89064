"""The life of one message as a state machine, written down as a table.

Rule 1 (after h11): everything that decides whether a message may change state lives in this
file. The journal, the ingest and the delivery workers ask ``next_state`` and never compare
states themselves, so the whole policy can be read, diagrammed and tested exhaustively here.

    RECEIVED --> ACCEPTED --> QUEUED --> DELIVERING --> DELIVERED --> RECEIPTED --> ANSWERED
      |  |                      ^          |   ^
      |  +--> DUPLICATE         |          v   |
      +-----> REJECTED          |        RETRYING
                                |          |
                                +-- DEAD <-+      (DEAD -> QUEUED is an operator's replay)
                                     |
                                     +--> DISCARDED   (an operator's discard, with a reason)

The table maps a current state and a *requested* state to the *resulting* state. Usually the
two are the same; where they differ, a late or repeated report is absorbed instead of moving the
message backwards:

- **Redelivery is recognised.** RabbitMQ delivers at least once, so DELIVERED may be reported
  again; the message stays DELIVERED (or RECEIPTED / ANSWERED, whichever it reached).
- **Late bookkeeping is absorbed.** The ingest writes QUEUED after the broker confirmed the
  publish, but a delivery worker can consume the message before that write lands. So ACCEPTED
  may go straight to DELIVERING, and a QUEUED that arrives after the worker has moved on leaves
  the state alone. The one exception is DEAD: QUEUED there is an operator's replay. A late
  QUEUED can only meet DEAD if the message used up its whole delivery limit between the
  broker's confirm and the ingest's next journal write, which is milliseconds.
- **An answer never decides delivery.** A receipt or a Customs Response that refers to a
  message not yet delivered (ACCEPTED, QUEUED, DELIVERING, RETRYING, or DEAD until an operator
  replays it) is linked to it and shown, but the message stays on its delivery path: RECEIPTED
  and ANSWERED are reached only from DELIVERED (ANSWERED also from RECEIPTED), and asking for
  them earlier is absorbed. Otherwise anyone able to get an answer accepted could stop a
  message that is still being retried (a claim on RECEIPTED or ANSWERED is refused as
  "already delivered"). When such a message is delivered later, it goes DELIVERED first; the
  shell that writes DELIVERED then asks for RECEIPTED and ANSWERED once more for the links
  already there (``gateway.submission.settle_links``, and the delivery receipt's own
  link), so it ends RECEIPTED or ANSWERED as if the answer had come after delivery.
- **DELIVERING -> DELIVERING** is a new attempt after a crashed worker's lease ran out (see
  the journal's ``claim_delivery``); it is the only repeat that is a real transition.
- DELIVERING -> RETRYING -> DELIVERING loops as long as the retry schedule allows; DEAD is
  parked, not final: an operator replays it back to QUEUED.

- DEAD -> DISCARDED is an operator giving up on a dead letter (with a reason): the journal
  keeps the entry, its timeline and payload until retention purges them; nothing replays it.

REJECTED, DUPLICATE, ANSWERED and DISCARDED are final: nothing moves them, and repeating a
report is a no-op. An operator's replay of a delivered message is a no-op too (QUEUED is
absorbed): the journal answers False and nothing reaches the receiver twice.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from gateway.errors import GatewayError


class MessageState(enum.Enum):
    """Where a message is in its life; the value is what the journal stores and the API shows."""

    RECEIVED = "RECEIVED"
    """The gateway has the bytes and a readable header, nothing more."""
    ACCEPTED = "ACCEPTED"
    """Valid, verified, authorised and journaled; the publish to the broker is under way."""
    QUEUED = "QUEUED"
    """The broker confirmed the publish; the sender got 202."""
    DELIVERING = "DELIVERING"
    """A delivery worker holds the claim and is handing the document to the receiver."""
    DELIVERED = "DELIVERED"
    """The receiving adapter took the document durably."""
    RECEIPTED = "RECEIPTED"
    """A delivery receipt went back to the sender and is linked to this message."""
    ANSWERED = "ANSWERED"
    """The receiver's business answer (Customs Response) is linked to this message."""
    REJECTED = "REJECTED"
    """Refused at ingest (the sender's fault); never queued."""
    RETRYING = "RETRYING"
    """A delivery attempt failed transiently; the message waits in a retry queue."""
    DEAD = "DEAD"
    """Parked for an operator: refused for good, retries exhausted or poison."""
    DUPLICATE = "DUPLICATE"
    """Refused at ingest because its business key belongs to another message id."""
    DISCARDED = "DISCARDED"
    """A dead letter an operator gave up on, with a reason; kept for audit, never delivered."""


# current state -> {requested state: resulting state}. A pair missing here is forbidden.
TRANSITIONS: dict[MessageState, dict[MessageState, MessageState]] = {
    MessageState.RECEIVED: {
        MessageState.ACCEPTED: MessageState.ACCEPTED,
        MessageState.REJECTED: MessageState.REJECTED,
        MessageState.DUPLICATE: MessageState.DUPLICATE,
    },
    MessageState.ACCEPTED: {
        MessageState.ACCEPTED: MessageState.ACCEPTED,  # the same message id submitted again
        MessageState.QUEUED: MessageState.QUEUED,
        # the worker consumed before the ingest wrote QUEUED
        MessageState.DELIVERING: MessageState.DELIVERING,
        # an early receipt or answer is linked, nothing more
        MessageState.RECEIPTED: MessageState.ACCEPTED,
        MessageState.ANSWERED: MessageState.ACCEPTED,
        # poison: the broker's delivery limit hit before any claim
        MessageState.DEAD: MessageState.DEAD,
    },
    MessageState.QUEUED: {
        MessageState.QUEUED: MessageState.QUEUED,
        MessageState.DELIVERING: MessageState.DELIVERING,
        MessageState.RECEIPTED: MessageState.QUEUED,
        MessageState.ANSWERED: MessageState.QUEUED,
        MessageState.DEAD: MessageState.DEAD,
    },
    MessageState.DELIVERING: {
        MessageState.QUEUED: MessageState.DELIVERING,  # late ingest bookkeeping
        # re-claim after an expired lease: a new attempt
        MessageState.DELIVERING: MessageState.DELIVERING,
        MessageState.DELIVERED: MessageState.DELIVERED,
        # linked; the hand-over itself decides delivery
        MessageState.RECEIPTED: MessageState.DELIVERING,
        MessageState.ANSWERED: MessageState.DELIVERING,
        MessageState.RETRYING: MessageState.RETRYING,
        MessageState.DEAD: MessageState.DEAD,
    },
    MessageState.RETRYING: {
        MessageState.QUEUED: MessageState.RETRYING,  # late ingest bookkeeping
        MessageState.DELIVERING: MessageState.DELIVERING,
        MessageState.RECEIPTED: MessageState.RETRYING,  # linked; the retry still delivers it
        MessageState.ANSWERED: MessageState.RETRYING,
        MessageState.DEAD: MessageState.DEAD,
    },
    MessageState.DELIVERED: {
        MessageState.QUEUED: MessageState.DELIVERED,
        MessageState.DELIVERED: MessageState.DELIVERED,  # redelivery recognised
        MessageState.RECEIPTED: MessageState.RECEIPTED,
        MessageState.ANSWERED: MessageState.ANSWERED,  # answered without (or before) a receipt
    },
    MessageState.RECEIPTED: {
        MessageState.QUEUED: MessageState.RECEIPTED,
        MessageState.DELIVERED: MessageState.RECEIPTED,
        MessageState.RECEIPTED: MessageState.RECEIPTED,
        MessageState.ANSWERED: MessageState.ANSWERED,
    },
    MessageState.ANSWERED: {
        MessageState.QUEUED: MessageState.ANSWERED,
        MessageState.DELIVERED: MessageState.ANSWERED,
        MessageState.RECEIPTED: MessageState.ANSWERED,  # a receipt that arrives after the answer
        # a further answer (e.g. partial, then full utilisation)
        MessageState.ANSWERED: MessageState.ANSWERED,
    },
    MessageState.DEAD: {
        MessageState.QUEUED: MessageState.QUEUED,  # operator replay
        MessageState.RECEIPTED: MessageState.DEAD,  # linked; parked until an operator replays it
        MessageState.ANSWERED: MessageState.DEAD,
        MessageState.DEAD: MessageState.DEAD,
        MessageState.DISCARDED: MessageState.DISCARDED,  # operator discard
    },
    MessageState.DISCARDED: {
        MessageState.QUEUED: MessageState.DISCARDED,  # a late replay request changes nothing
        MessageState.RECEIPTED: MessageState.DISCARDED,
        MessageState.ANSWERED: MessageState.DISCARDED,
        MessageState.DEAD: MessageState.DISCARDED,
        MessageState.DISCARDED: MessageState.DISCARDED,
    },
    MessageState.REJECTED: {MessageState.REJECTED: MessageState.REJECTED},
    MessageState.DUPLICATE: {MessageState.DUPLICATE: MessageState.DUPLICATE},
}

INITIAL_STATES: tuple[MessageState, ...] = (MessageState.RECEIVED, MessageState.ACCEPTED)
"""The rows ``record_accepted`` writes for a new message, in order."""

DELIVERED_STATES = frozenset(
    {MessageState.DELIVERED, MessageState.RECEIPTED, MessageState.ANSWERED}
)
"""The receiver has the document: a redelivery must never reach it again."""

CLAIMABLE_STATES = frozenset(
    current
    for current, moves in TRANSITIONS.items()
    if moves.get(MessageState.DELIVERING) is MessageState.DELIVERING
    and current is not MessageState.DELIVERING
)
"""States a delivery worker may claim outright; DELIVERING only once its lease has run out."""

WAITING_STATES = CLAIMABLE_STATES | {MessageState.DELIVERING}
"""Not handed over yet: claimable, or being handed over (under a lease)."""

FINAL_STATES = frozenset(
    current for current, moves in TRANSITIONS.items() if set(moves.values()) == {current}
)
"""States nothing can move a message out of."""


class InvalidTransition(GatewayError):
    """A message was asked to move to a state the table forbids from where it is.

    It means a bug in a shell or an operator asking for the impossible (e.g. delivering a
    message that was rejected at ingest); either way nothing is written.
    """

    code: ClassVar[str] = "invalid-transition"
    http_status: ClassVar[int] = 409
    title: ClassVar[str] = "The message cannot move to that state"

    def __init__(self, current: MessageState, requested: MessageState) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
        super().__init__(
            f"A message in state {current.value} cannot move to {requested.value} "
            f"(allowed from {current.value}: {allowed})."
        )
        self.current = current
        self.requested = requested


def next_state(current: MessageState, requested: MessageState) -> MessageState:
    """Return the state a message in ``current`` is in after ``requested`` is reported.

    The result equals ``current`` when the report is a repeat or arrives late (a no-op for the
    journal); it raises ``InvalidTransition`` when the table has no such move.
    """
    try:
        return TRANSITIONS[current][requested]
    except KeyError:
        raise InvalidTransition(current, requested) from None


def is_change(current: MessageState, requested: MessageState) -> bool:
    """Tell whether reporting ``requested`` changes anything, i.e. deserves a timeline row.

    Only the re-claim of DELIVERING is a real transition back to the same state; it is written
    by the journal's claim, which knows the attempt number.
    """
    return next_state(current, requested) is not current
