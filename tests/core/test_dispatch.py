"""The delivery decision: pinned cases, and every combination of its inputs checked."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from gateway.core.dispatch import (
    Ack,
    AckReason,
    Arrival,
    Claim,
    DeadLetter,
    Decision,
    Deliver,
    ParkRecorded,
    Record,
    Retry,
    decide,
)
from gateway.core.lease import ClaimResult
from gateway.core.retry import RetrySchedule
from gateway.errors import (
    FolderUnsafe,
    GatewayError,
    JournalUnavailable,
    PeerTimeout,
    PeerUnavailable,
    PermanentDeliveryFailure,
    RejectedMessage,
    SignatureProblem,
    TemporaryFailure,
)

POISON_AFTER = 3
SCHEDULES = [
    RetrySchedule((5.0, 30.0, 120.0)),
    RetrySchedule((0.2,)),
    RetrySchedule(()),
]
TEMPORARY: list[type[TemporaryFailure]] = [
    TemporaryFailure,
    PeerUnavailable,
    PeerTimeout,
    JournalUnavailable,
    FolderUnsafe,
]
PERMANENT: list[type[GatewayError]] = [
    GatewayError,
    PermanentDeliveryFailure,
    RejectedMessage,
    SignatureProblem,
]
CLAIMS: list[ClaimResult | None] = [None, *ClaimResult]
FAILURES: list[type[GatewayError] | None] = [None, *TEMPORARY, *PERMANENT]


def arrival(
    *, attempt: int = 1, crashes: int = 0, redelivered: bool = False, handed_over: bool = False
) -> Arrival:
    """An arrival of message m-1 with the given counts."""
    return Arrival(
        message_id="m-1",
        attempt=attempt,
        crashes=crashes,
        redelivered=redelivered,
        handed_over=handed_over,
    )


def run(
    came: Arrival,
    *,
    schedule: RetrySchedule = SCHEDULES[0],
    claim: ClaimResult | None = None,
    failure: GatewayError | None = None,
) -> Decision:
    """Decide with the standard poison limit."""
    return decide(came, poison_after=POISON_AFTER, schedule=schedule, claim=claim, failure=failure)


class TestPinnedCases:
    """The paths the delivery worker takes, one by one."""

    def test_fresh_message_is_claimed(self) -> None:
        """A first delivery with no crashes is claimed before anything else."""
        assert run(arrival()) == Claim()

    def test_granted_claim_delivers_without_asking(self) -> None:
        """The granted first attempt hands over at once, without asking the receiver."""
        assert run(arrival(), claim=ClaimResult.GRANTED) == Deliver(ask_receiver_first=False)

    def test_retry_asks_receiver_first(self) -> None:
        """A second attempt asks the receiver whether it has the message already."""
        decision = run(arrival(attempt=2), claim=ClaimResult.GRANTED)
        assert decision == Deliver(ask_receiver_first=True)

    def test_redelivery_asks_receiver_first(self) -> None:
        """A copy RabbitMQ redelivered asks the receiver first, even on attempt 1."""
        decision = run(arrival(redelivered=True), claim=ClaimResult.GRANTED)
        assert decision == Deliver(ask_receiver_first=True)

    def test_delivered_copy_is_acked_with_receipt_again(self) -> None:
        """A copy of a delivered message is acked, and its receipt issued again."""
        decision = run(arrival(redelivered=True), claim=ClaimResult.DELIVERED)
        assert decision == Ack(reason=AckReason.ALREADY_DELIVERED)
        assert isinstance(decision, Ack)
        assert decision.receipt_again
        assert decision.reason.value == "delivered"

    def test_undeliverable_copy_is_dropped(self) -> None:
        """A copy of a parked or rejected message is acked without a receipt."""
        decision = run(arrival(), claim=ClaimResult.NOT_DELIVERABLE)
        assert decision == Ack(reason=AckReason.REDELIVERY_IGNORED)
        assert isinstance(decision, Ack)
        assert not decision.receipt_again
        assert decision.reason.value == "not-deliverable"

    def test_postponed_parking_found_dead_is_parked(self) -> None:
        """A postponed parking whose DEAD write landed late is parked, not dropped."""
        came = dataclasses.replace(arrival(attempt=2), parking=True)
        assert run(came, claim=ClaimResult.NOT_DELIVERABLE) == ParkRecorded()
        assert isinstance(run(came, claim=ClaimResult.GRANTED), Deliver)
        assert isinstance(run(came, claim=ClaimResult.DELIVERED), Ack)

    def test_unknown_message_is_dead_lettered(self) -> None:
        """A message the journal never saw is parked as not-in-journal, naming its id."""
        decision = run(arrival(attempt=2), claim=ClaimResult.UNKNOWN)
        assert isinstance(decision, DeadLetter)
        assert decision.reason.code == "not-in-journal"
        assert "m-1" in decision.reason.detail
        assert decision.last_error is decision.reason
        assert decision.attempt == 2

    def test_other_bytes_are_dead_lettered(self) -> None:
        """Bytes other than the accepted ones are parked as digest-mismatch."""
        decision = run(arrival(), claim=ClaimResult.OTHER_BYTES)
        assert isinstance(decision, DeadLetter)
        assert decision.reason.code == "digest-mismatch"
        assert decision.last_error is decision.reason

    def test_busy_copy_retries_unnoted(self) -> None:
        """A copy another worker is handing over goes to the first retry step, unnoted."""
        decision = run(arrival(), claim=ClaimResult.BUSY)
        assert isinstance(decision, Retry)
        assert (decision.next_attempt, decision.delay_seconds) == (2, 5.0)
        assert decision.error.code == "peer-unavailable"
        assert not decision.note

    def test_busy_copy_is_never_parked(self) -> None:
        """Past the schedule a busy copy keeps coming back at the last step."""
        decision = run(arrival(attempt=9), claim=ClaimResult.BUSY)
        assert isinstance(decision, Retry)
        assert (decision.next_attempt, decision.delay_seconds) == (4, 120.0)
        assert decision.failed_attempt == 9

    def test_busy_copy_without_schedule_is_parked(self) -> None:
        """With no retry steps at all even a busy copy is parked as retries-exhausted."""
        decision = run(arrival(), schedule=RetrySchedule(()), claim=ClaimResult.BUSY)
        assert isinstance(decision, DeadLetter)
        assert decision.reason.code == "retries-exhausted"
        assert decision.last_error.code == "peer-unavailable"

    def test_temporary_failure_retries_noted(self) -> None:
        """A temporary failure goes to the next step and is noted RETRYING."""
        failure = PeerUnavailable("the NSW answered 503")
        decision = run(arrival(attempt=2), claim=ClaimResult.GRANTED, failure=failure)
        assert decision == Retry(
            failed_attempt=2, next_attempt=3, delay_seconds=30.0, error=failure, note=True
        )

    def test_schedule_used_up_is_retries_exhausted(self) -> None:
        """The failure after the last step parks the message, quoting the last error."""
        failure = PeerTimeout("no answer in 10 s")
        decision = run(arrival(attempt=4), claim=ClaimResult.GRANTED, failure=failure)
        assert isinstance(decision, DeadLetter)
        assert decision.reason.code == "retries-exhausted"
        assert decision.reason.detail == (
            "Delivery failed 4 times; the last error was peer-timeout: no answer in 10 s"
        )
        assert decision.last_error is failure
        assert decision.attempt == 4

    def test_permanent_failure_is_dead_lettered_at_once(self) -> None:
        """A permanent failure on the first attempt is parked with its own code."""
        failure = PermanentDeliveryFailure("HTTP 400")
        decision = run(arrival(), claim=ClaimResult.GRANTED, failure=failure)
        assert decision == DeadLetter(reason=failure, attempt=1, last_error=failure)

    def test_failure_while_claiming_is_decided(self) -> None:
        """A journal failure raised by the claim itself goes to a retry step."""
        failure = JournalUnavailable("database down")
        decision = run(arrival(), failure=failure)
        assert isinstance(decision, Retry) and decision.error is failure

    def test_poison_is_parked_before_the_claim(self) -> None:
        """At poison_after crashes the message is parked without being claimed."""
        decision = run(arrival(crashes=POISON_AFTER, attempt=2))
        assert isinstance(decision, DeadLetter)
        assert decision.reason.code == "poison-message"
        assert f"interrupted {POISON_AFTER} times" in decision.reason.detail
        assert decision.last_error is decision.reason
        assert decision.attempt == 2

    def test_one_crash_short_of_poison_is_claimed(self) -> None:
        """One crash fewer than poison_after is still claimed."""
        assert run(arrival(crashes=POISON_AFTER - 1)) == Claim()

    def test_attempt_counts_from_one(self) -> None:
        """An attempt of 0 is refused when a retry step must be chosen."""
        with pytest.raises(ValueError, match="counts from 1"):
            run(arrival(attempt=0), failure=PeerUnavailable("down"))

    def test_handed_over_copy_is_only_recorded(self) -> None:
        """A copy marked as handed over is recorded, even when it looks poisoned."""
        assert run(arrival(handed_over=True, crashes=POISON_AFTER + 1)) == Record()

    def test_unrecorded_hand_over_retries_unnoted_and_marked(self) -> None:
        """A journal failure after the hand-over retries marked, without noting RETRYING."""
        failure = JournalUnavailable("database restarting")
        decision = run(arrival(handed_over=True), failure=failure)
        assert decision == Retry(
            failed_attempt=1,
            next_attempt=2,
            delay_seconds=5.0,
            error=failure,
            note=False,
            handed_over=True,
        )

    def test_unrecorded_hand_over_is_never_parked(self) -> None:
        """Past the schedule a handed-over copy keeps coming back at the last step."""
        decision = run(arrival(handed_over=True, attempt=9), failure=JournalUnavailable("down"))
        assert isinstance(decision, Retry) and decision.handed_over
        assert (decision.next_attempt, decision.delay_seconds) == (4, 120.0)

    def test_results_are_frozen(self) -> None:
        """Decisions cannot be changed after they are made."""
        decision = run(arrival(), claim=ClaimResult.GRANTED)
        with pytest.raises(dataclasses.FrozenInstanceError):
            decision.ask_receiver_first = True  # type: ignore[union-attr,misc]


def expected(
    came: Arrival,
    schedule: RetrySchedule,
    claim: ClaimResult | None,
    failure: GatewayError | None,
) -> tuple[type[Decision], str | None]:
    """The decision's kind and error code, written out independently of the code under test."""
    delays = len(schedule.delays_seconds)
    if came.handed_over:
        return _expected_handed_over(delays, failure)
    if came.crashes >= POISON_AFTER:
        return DeadLetter, "poison-message"
    if failure is not None:
        if not failure.retryable:
            return DeadLetter, failure.code
        if came.attempt <= delays:
            return Retry, failure.code
        return DeadLetter, "retries-exhausted"
    busy = (Retry, "peer-unavailable") if delays else (DeadLetter, "retries-exhausted")
    table: dict[ClaimResult | None, tuple[type[Decision], str | None]] = {
        None: (Claim, None),
        ClaimResult.GRANTED: (Deliver, None),
        ClaimResult.DELIVERED: (Ack, None),
        ClaimResult.NOT_DELIVERABLE: (Ack, None),
        ClaimResult.BUSY: busy,
        ClaimResult.UNKNOWN: (DeadLetter, "not-in-journal"),
        ClaimResult.OTHER_BYTES: (DeadLetter, "digest-mismatch"),
    }
    assert set(table) == set(CLAIMS), "every claim answer has a row"
    return table[claim]


def _expected_handed_over(
    delays: int, failure: GatewayError | None
) -> tuple[type[Decision], str | None]:
    """A copy handed over before: recorded; after a temporary failure, retried for good."""
    if failure is None:
        return Record, None
    if not failure.retryable:
        return DeadLetter, failure.code
    return (Retry, failure.code) if delays else (DeadLetter, "retries-exhausted")


CRASHES = (0, POISON_AFTER - 1, POISON_AFTER, POISON_AFTER + 1)
ATTEMPTS = range(1, 6)  # within and beyond the longest schedule
FLAGS = (False, True)
OTHER_INPUTS = list(itertools.product(CRASHES, ATTEMPTS, FLAGS, FLAGS, SCHEDULES))


def _code(decision: Decision) -> str | None:
    if isinstance(decision, Retry):
        return decision.error.code
    if isinstance(decision, DeadLetter):
        return decision.reason.code
    return None


class TestEveryCombination:
    """Claim x failure, each over crashes x attempt x redelivery x hand-over x schedule."""

    def test_grid_is_complete(self) -> None:
        """The grid covers every claim answer, no failure and both kinds of failure."""
        assert set(CLAIMS) == {None, *ClaimResult}
        assert len(OTHER_INPUTS) == 4 * 5 * 2 * 2 * 3
        assert any(t.retryable for t in TEMPORARY) and not any(t.retryable for t in PERMANENT)

    @pytest.mark.parametrize("failure_type", FAILURES, ids=lambda t: t.code if t else "none")
    @pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.value if c else "no-claim")
    def test_decision_matches_the_table(
        self, claim: ClaimResult | None, failure_type: type[GatewayError] | None
    ) -> None:
        """Each combination gets the kind and code the table says, and a consistent result."""
        for crashes, attempt, redelivered, handed_over, schedule in OTHER_INPUTS:
            came = arrival(
                attempt=attempt,
                crashes=crashes,
                redelivered=redelivered,
                handed_over=handed_over,
            )
            failure = failure_type("it failed") if failure_type else None
            decision = run(came, schedule=schedule, claim=claim, failure=failure)
            kind, code = expected(came, schedule, claim, failure)
            assert type(decision) is kind, (came, schedule, decision)
            assert _code(decision) == code, (came, schedule, decision)
            _check_consistent(decision, came, schedule, claim, failure)


def _check_consistent(
    decision: Decision,
    came: Arrival,
    schedule: RetrySchedule,
    claim: ClaimResult | None,
    failure: GatewayError | None,
) -> None:
    """The details of a decision agree with its inputs."""
    attempt = came.attempt
    if isinstance(decision, Deliver):
        assert decision.ask_receiver_first is (came.redelivered or attempt > 1)
    if isinstance(decision, Ack):
        assert decision.receipt_again is (claim is ClaimResult.DELIVERED)
    if isinstance(decision, Retry):
        busy = failure is None and claim is ClaimResult.BUSY and not came.handed_over
        delays = schedule.delays_seconds
        step = min(attempt, len(delays)) if busy or came.handed_over else attempt
        assert decision.failed_attempt == attempt
        assert decision.next_attempt == step + 1
        assert decision.delay_seconds == delays[step - 1]
        assert decision.note is not (busy or came.handed_over)
        assert decision.handed_over is came.handed_over
        if failure is not None:
            assert decision.error is failure
    if isinstance(decision, DeadLetter):
        assert decision.attempt == attempt
        exhausted = decision.reason.code == "retries-exhausted"
        assert (decision.last_error is decision.reason) is not exhausted
        if exhausted:
            assert decision.last_error.retryable
            assert f"failed {attempt} times" in decision.reason.detail
        poisoned = came.crashes >= POISON_AFTER and not came.handed_over
        if failure is not None and not exhausted and not poisoned:
            assert decision.reason is failure
