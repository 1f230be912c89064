"""What the delivery worker does with a message from a receiver's queue, as a pure decision.

The worker asks twice, and a third time if something fails:

1. On arrival (no claim yet): a copy marked as handed over already (the receiver has the
   document, but the journal could not record DELIVERED then) is only ``Record``-ed, never
   handed over again; a message whose deliveries ended without a settle ``poison_after``
   times (the worker died or crashed on it) is parked as ``poison-message`` before it can do
   so again; any other is ``Claim``-ed in the journal.
2. With the journal's ``ClaimResult``: the one granted claimant hands the document over
   (``Deliver``); a copy of a delivered message is acked (its receipt issued again); a copy
   that is parked, rejected or never queued for good is acked and dropped; a copy another
   worker is handing over goes to a retry step (never parked over that live claim, and not
   noted in the journal, whose state belongs to the claimant); a message the journal never
   saw, or whose bytes are not the accepted ones, is dead-lettered.
3. With the error raised on the way (claiming, handing over, receipting): a temporary
   failure goes to the next step of the retry schedule, or is dead-lettered as
   ``retries-exhausted`` once the schedule is used up; any other error is dead-lettered with
   its own code. A temporary failure *after* a successful hand-over (recording DELIVERED or
   the receipt failed) goes to a retry step marked as handed over, without noting RETRYING
   (which would free the claim for a second hand-over), and keeps coming back at the last
   step until it is recorded: it is never parked and never handed over again.

The shell (``gateway.delivery``) performs the result: it talks to the journal, the adapter and
RabbitMQ, and logs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.core.lease import ClaimResult
from gateway.core.retry import GiveUp, RetrySchedule
from gateway.errors import (
    DigestMismatch,
    GatewayError,
    PeerUnavailable,
    PoisonMessage,
    RetriesExhausted,
    TemporaryFailure,
    UnknownMessage,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """What the worker knows of a message before doing anything with it."""

    message_id: str
    attempt: int
    """This delivery attempt, counting from 1 (the retry steps carry it in a header)."""
    crashes: int
    """Deliveries of this copy that ended without a settle (the quorum queue counts them)."""
    redelivered: bool
    """RabbitMQ delivered this copy before (the worker's connection dropped before its ack)."""
    handed_over: bool = False
    """The receiver has the document already; only recording it is left to do."""
    parking: bool = False
    """A copy whose parking was postponed (the journal could not say DEAD then): it carries its
    dead-letter reason. Should the DEAD write have landed after all, it is parked, not dropped."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Claim the message in the journal, then decide again with the claim's answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Hand the document over; ack once the adapter returned."""

    ask_receiver_first: bool
    """The receiver may have it already (a redelivery or a retry): ask before handing over."""


class AckReason(enum.Enum):
    """Why a copy is acked without a hand-over; the value is the claim's, as logged."""

    ALREADY_DELIVERED = ClaimResult.DELIVERED.value
    """A redelivery of a delivered message: issue its receipt again, in case it is missing."""
    REDELIVERY_IGNORED = ClaimResult.NOT_DELIVERABLE.value
    """Parked, rejected or never queued for good: drop this copy."""


@dataclass(frozen=True, slots=True)
class Record:
    """The document was handed over before: record DELIVERED (and the receipt), then ack.

    Never a second hand-over: the copy comes from a worker that handed it over and could not
    record it (the journal blinked), so the receiver has it.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """Ack the copy without handing it over."""

    reason: AckReason

    @property
    def receipt_again(self) -> bool:
        """Whether to issue the receipt again before the ack."""
        return self.reason is AckReason.ALREADY_DELIVERED


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Publish the copy to the retry step of ``delay_seconds``, then ack the original."""

    failed_attempt: int
    next_attempt: int
    delay_seconds: float
    error: TemporaryFailure
    note: bool
    """Record RETRYING in the journal (not for a copy another worker holds a claim on)."""
    handed_over: bool = False
    """Mark the copy as handed over: when it comes back, it is only recorded (``Record``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """Record DEAD, publish the copy to the dead letters with ``reason``, ack the original."""

    reason: GatewayError
    attempt: int
    last_error: GatewayError


@dataclass(frozen=True, slots=True)
class ParkRecorded:
    """The journal says DEAD already (a postponed parking whose DEAD write landed late):
    publish the copy to the dead letters with the reason it carries, then ack the original."""


Decision = Claim | Deliver | Record | Ack | Retry | DeadLetter | ParkRecorded


def decide(
    arrival: Arrival,
    *,
    poison_after: int,
    schedule: RetrySchedule,
    claim: ClaimResult | None = None,
    failure: GatewayError | None = None,
) -> Decision:
    """The next step for ``arrival``, given the claim's answer and the error raised, if any.

    A copy handed over before is recorded, whatever else is known (parking it would tell the
    operator a delivered document was not delivered); a poisoned message is parked; an error
    raised on the way decides over the claim that came before it.
    """
    if arrival.handed_over:
        if failure is None:
            return Record()
        return _after_failure(arrival.attempt, failure, schedule, handed_over=True)
    if arrival.crashes >= poison_after:
        poison = PoisonMessage(
            f"Delivery of this message was interrupted {arrival.crashes} times (the worker "
            "stopped or failed while handling it); it is parked so it cannot block "
            "the messages behind it."
        )
        return DeadLetter(reason=poison, attempt=arrival.attempt, last_error=poison)
    if failure is not None:
        return _after_failure(arrival.attempt, failure, schedule)
    if claim is None:
        return Claim()
    return _after_claim(arrival, claim, schedule)


_ACKED = {
    ClaimResult.DELIVERED: AckReason.ALREADY_DELIVERED,
    ClaimResult.NOT_DELIVERABLE: AckReason.REDELIVERY_IGNORED,
}


def _after_claim(arrival: Arrival, claim: ClaimResult, schedule: RetrySchedule) -> Decision:
    """Hand over on the granted claim, ack a copy, retry a busy one, park a refused one."""
    if claim is ClaimResult.GRANTED:
        return Deliver(ask_receiver_first=arrival.redelivered or arrival.attempt > 1)
    if claim is ClaimResult.NOT_DELIVERABLE and arrival.parking:
        return ParkRecorded()
    acked = _ACKED.get(claim)
    if acked is not None:
        return Ack(reason=acked)
    if claim is ClaimResult.BUSY:
        busy = PeerUnavailable("Another worker is delivering this message right now.")
        return _after_failure(arrival.attempt, busy, schedule, busy=True)
    return _after_failure(arrival.attempt, _refusal(arrival.message_id, claim), schedule)


def _refusal(message_id: str, claim: ClaimResult) -> GatewayError:
    """The error a claim refused for good stands for."""
    if claim is ClaimResult.UNKNOWN:
        return UnknownMessage(f"Message {message_id} was never recorded as accepted.")
    if claim is ClaimResult.OTHER_BYTES:
        return DigestMismatch(
            "The document handed to delivery differs from the one the gateway accepted."
        )
    raise ValueError(f"the claim answer {claim.value!r} is no refusal")


def _after_failure(
    attempt: int,
    error: GatewayError,
    schedule: RetrySchedule,
    *,
    busy: bool = False,
    handed_over: bool = False,
) -> Retry | DeadLetter:
    """Retry a temporary failure while the schedule lasts; park anything else.

    ``handed_over``: the failure came after the receiver got the document (recording it
    failed), so the copy goes on only as handed over, and it is not noted as RETRYING.
    """
    if not isinstance(error, TemporaryFailure):
        return DeadLetter(reason=error, attempt=attempt, last_error=error)
    step = schedule.after_failure(attempt)
    if isinstance(step, GiveUp) and (busy or handed_over):
        # Never park a copy over another worker's live claim, nor one the receiver has: keep
        # coming back at the last step until the claimant settles it, or it is recorded.
        step = schedule.after_failure(len(schedule.delays_seconds) or 1)
    if isinstance(step, GiveUp):
        exhausted = RetriesExhausted(
            f"Delivery failed {attempt} times; the last error was {error.code}: {error.detail}"
        )
        return DeadLetter(reason=exhausted, attempt=attempt, last_error=error)
    return Retry(
        failed_attempt=attempt,
        next_attempt=step.attempt,
        delay_seconds=step.delay_seconds,
        error=error,
        note=not (busy or handed_over),
        handed_over=handed_over,
    )
