"""The message state machine: pinned paths, and properties checked over every pair of states."""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

import pytest

from gateway.core import states
from gateway.core.states import (
    CLAIMABLE_STATES,
    DELIVERED_STATES,
    FINAL_STATES,
    TRANSITIONS,
    InvalidTransition,
    MessageState,
    is_change,
    next_state,
)

ALL_PAIRS = list(itertools.product(MessageState, MessageState))


def walk(*path: MessageState) -> MessageState:
    """Feed a sequence of requested states from the first one; return where it ends."""
    current = path[0]
    for requested in path[1:]:
        current = next_state(current, requested)
    return current


class TestPinnedPaths:
    """The paths the architecture names, one by one."""

    def test_happy_path_reaches_answered(self) -> None:
        """RECEIVED to ANSWERED through every intermediate state is allowed."""
        path = (
            MessageState.RECEIVED,
            MessageState.ACCEPTED,
            MessageState.QUEUED,
            MessageState.DELIVERING,
            MessageState.DELIVERED,
            MessageState.RECEIPTED,
        )
        assert walk(*path, MessageState.ANSWERED) is MessageState.ANSWERED

    def test_retry_loop(self) -> None:
        """DELIVERING -> RETRYING -> DELIVERING loops as often as needed, then delivers."""
        assert (
            walk(
                MessageState.DELIVERING,
                *[MessageState.RETRYING, MessageState.DELIVERING] * 5,
                MessageState.DELIVERED,
            )
            is MessageState.DELIVERED
        )

    def test_dead_is_replayable(self) -> None:
        """An operator's replay moves DEAD back to QUEUED, and it can be delivered again."""
        assert (
            walk(
                MessageState.DELIVERING,
                MessageState.DEAD,
                MessageState.QUEUED,
                MessageState.DELIVERING,
                MessageState.DELIVERED,
            )
            is MessageState.DELIVERED
        )

    def test_dead_letter_can_be_discarded_for_good(self) -> None:
        """An operator's discard moves DEAD to DISCARDED; a later replay or report is absorbed."""
        discarded = MessageState.DISCARDED
        assert walk(MessageState.DELIVERING, MessageState.DEAD, discarded) is discarded
        for late in (
            MessageState.QUEUED,
            MessageState.DEAD,
            MessageState.RECEIPTED,
            MessageState.ANSWERED,
            discarded,
        ):
            assert next_state(discarded, late) is discarded
        with pytest.raises(InvalidTransition):
            next_state(discarded, MessageState.DELIVERED)

    @pytest.mark.parametrize(
        "state",
        [
            MessageState.ACCEPTED,
            MessageState.QUEUED,
            MessageState.DELIVERING,
            MessageState.DELIVERED,
            MessageState.RETRYING,
        ],
    )
    def test_only_dead_letters_are_discarded(self, state: MessageState) -> None:
        """DISCARDED is reached only from DEAD: a message still moving cannot be discarded."""
        with pytest.raises(InvalidTransition):
            next_state(state, MessageState.DISCARDED)

    def test_answer_without_receipt(self) -> None:
        """A DELIVERED message may be ANSWERED without a receipt."""
        assert next_state(MessageState.DELIVERED, MessageState.ANSWERED) is MessageState.ANSWERED

    @pytest.mark.parametrize(
        "state", [MessageState.DELIVERED, MessageState.RECEIPTED, MessageState.ANSWERED]
    )
    def test_redelivery_is_recognised(self, state: MessageState) -> None:
        """Reporting DELIVERED again never moves a delivered message and is not a change."""
        assert state in DELIVERED_STATES
        assert next_state(state, MessageState.DELIVERED) is state
        assert not is_change(state, MessageState.DELIVERED)

    def test_worker_may_overtake_ingest(self) -> None:
        """ACCEPTED may go straight to DELIVERING, and the late QUEUED is then absorbed."""
        assert (
            walk(MessageState.ACCEPTED, MessageState.DELIVERING, MessageState.QUEUED)
            is MessageState.DELIVERING
        )

    def test_late_receipt_after_answer(self) -> None:
        """A receipt arriving after the answer leaves the message ANSWERED."""
        assert next_state(MessageState.ANSWERED, MessageState.RECEIPTED) is MessageState.ANSWERED

    def test_answer_never_decides_delivery(self) -> None:
        """An answer reported while DELIVERING is absorbed; the hand-over then says DELIVERED."""
        assert (
            walk(MessageState.DELIVERING, MessageState.ANSWERED, MessageState.DELIVERED)
            is MessageState.DELIVERED
        )

    def test_answer_to_a_retrying_message_keeps_it_retrying(self) -> None:
        """An answer or receipt for a RETRYING message leaves it claimable; delivery goes on."""
        assert (
            walk(MessageState.RETRYING, MessageState.ANSWERED, MessageState.RECEIPTED)
            is MessageState.RETRYING
        )
        assert MessageState.RETRYING in CLAIMABLE_STATES
        assert (
            walk(
                MessageState.RETRYING,
                MessageState.ANSWERED,
                MessageState.DELIVERING,
                MessageState.DELIVERED,
                MessageState.ANSWERED,
            )
            is MessageState.ANSWERED
        )

    def test_late_delivery_then_settles_links(self) -> None:
        """Delivered after its receipt and answer were linked: DELIVERED, RECEIPTED, ANSWERED."""
        assert (
            walk(
                MessageState.QUEUED,
                MessageState.RECEIPTED,
                MessageState.ANSWERED,
                MessageState.DELIVERING,
            )
            is MessageState.DELIVERING
        )
        assert (
            walk(
                MessageState.DELIVERING,
                MessageState.DELIVERED,
                MessageState.RECEIPTED,
                MessageState.ANSWERED,
            )
            is MessageState.ANSWERED
        )

    def test_answer_to_a_parked_message_keeps_it_replayable(self) -> None:
        """An answer for a DEAD message is absorbed; the operator can still replay it."""
        assert (
            walk(
                MessageState.DEAD,
                MessageState.ANSWERED,
                MessageState.RECEIPTED,
                MessageState.QUEUED,
            )
            is MessageState.QUEUED
        )

    def test_reclaim_after_lease_is_not_a_change(self) -> None:
        """DELIVERING -> DELIVERING is allowed (re-claim) but is written by the claim itself."""
        assert (
            next_state(MessageState.DELIVERING, MessageState.DELIVERING) is MessageState.DELIVERING
        )
        assert not is_change(MessageState.DELIVERING, MessageState.DELIVERING)

    @pytest.mark.parametrize(
        ("current", "requested"),
        [
            (MessageState.RECEIVED, MessageState.QUEUED),
            (MessageState.ACCEPTED, MessageState.DELIVERED),
            (MessageState.QUEUED, MessageState.DELIVERED),
            (MessageState.REJECTED, MessageState.QUEUED),
            (MessageState.DUPLICATE, MessageState.ACCEPTED),
            (MessageState.DELIVERED, MessageState.RETRYING),
            (MessageState.DELIVERED, MessageState.DEAD),
            (MessageState.DEAD, MessageState.DELIVERED),
            (MessageState.ANSWERED, MessageState.DEAD),
            (MessageState.RETRYING, MessageState.DELIVERED),
        ],
    )
    def test_forbidden_moves_raise(self, current: MessageState, requested: MessageState) -> None:
        """Moves the table lacks raise InvalidTransition naming both states."""
        with pytest.raises(InvalidTransition) as caught:
            next_state(current, requested)
        assert caught.value.code == "invalid-transition"
        assert caught.value.http_status == 409
        assert current.value in caught.value.detail
        assert requested.value in caught.value.detail


class TestEveryPair:
    """Properties over all 121 (current, requested) pairs."""

    @pytest.mark.parametrize(("current", "requested"), ALL_PAIRS)
    def test_result_is_target_or_unchanged(
        self, current: MessageState, requested: MessageState
    ) -> None:
        """Every pair either raises or ends in the requested state or stays put."""
        if requested not in TRANSITIONS[current]:
            with pytest.raises(InvalidTransition) as caught:
                next_state(current, requested)
            assert (caught.value.current, caught.value.requested) == (current, requested)
            return
        result = next_state(current, requested)
        assert result in (current, requested)
        assert is_change(current, requested) is (result is not current)

    @pytest.mark.parametrize(("current", "requested"), ALL_PAIRS)
    def test_delivered_never_regresses(
        self, current: MessageState, requested: MessageState
    ) -> None:
        """Once delivered, no report takes a message back to an undelivered state."""
        if current not in DELIVERED_STATES or requested not in TRANSITIONS[current]:
            return
        assert next_state(current, requested) in DELIVERED_STATES

    @pytest.mark.parametrize(("current", "requested"), ALL_PAIRS)
    def test_final_states_never_move(self, current: MessageState, requested: MessageState) -> None:
        """From a final state every report is a no-op or refused."""
        if current not in FINAL_STATES:
            return
        if requested in TRANSITIONS[current]:
            assert next_state(current, requested) is current
        else:
            with pytest.raises(InvalidTransition):
                next_state(current, requested)

    @pytest.mark.parametrize(("current", "requested"), ALL_PAIRS)
    def test_answered_and_receipted_only_after_delivery(
        self, current: MessageState, requested: MessageState
    ) -> None:
        """RECEIPTED and ANSWERED are entered only from a delivered state, never before."""
        if requested not in TRANSITIONS[current]:
            return
        result = next_state(current, requested)
        if result in (MessageState.RECEIPTED, MessageState.ANSWERED) and result is not current:
            assert current in DELIVERED_STATES

    @pytest.mark.parametrize("current", sorted(set(MessageState) - DELIVERED_STATES, key=str))
    @pytest.mark.parametrize("requested", [MessageState.RECEIPTED, MessageState.ANSWERED])
    def test_answers_leave_undelivered_states_alone(
        self, current: MessageState, requested: MessageState
    ) -> None:
        """A receipt or answer for an undelivered message changes nothing (or is refused)."""
        if current in (MessageState.RECEIVED, MessageState.REJECTED, MessageState.DUPLICATE):
            assert requested not in TRANSITIONS[current]
            return
        assert next_state(current, requested) is current
        assert not is_change(current, requested)

    def test_every_state_has_a_row(self) -> None:
        """The table has a row for every state and no unknown keys."""
        assert set(TRANSITIONS) == set(MessageState)
        for moves in TRANSITIONS.values():
            assert set(moves) <= set(MessageState)
            assert set(moves.values()) <= set(MessageState)

    def test_every_state_reachable_from_received(self) -> None:
        """Each state can be reached from RECEIVED; none is dead code in the table."""
        seen = {MessageState.RECEIVED}
        pending = deque([MessageState.RECEIVED])
        while pending:
            current = pending.popleft()
            for result in TRANSITIONS[current].values():
                if result not in seen:
                    seen.add(result)
                    pending.append(result)
        assert seen == set(MessageState)

    def test_every_state_can_settle(self) -> None:
        """From every state some path leads to a final state or to DEAD (parked)."""
        settled = FINAL_STATES | {MessageState.DEAD}
        for start in MessageState:
            seen = {start}
            pending = deque([start])
            while pending:
                current = pending.popleft()
                pending.extend(r for r in TRANSITIONS[current].values() if r not in seen)
                seen.update(TRANSITIONS[current].values())
            assert seen & settled, start

    def test_refusals_only_at_ingest(self) -> None:
        """REJECTED and DUPLICATE can only be entered from RECEIVED."""
        for current, moves in TRANSITIONS.items():
            for result in moves.values():
                if (
                    result in (MessageState.REJECTED, MessageState.DUPLICATE)
                    and result is not current
                ):
                    assert current is MessageState.RECEIVED

    def test_derived_sets(self) -> None:
        """The claimable and final sets derived from the table are the intended ones."""
        assert {
            MessageState.ACCEPTED,
            MessageState.QUEUED,
            MessageState.RETRYING,
        } == CLAIMABLE_STATES
        assert {
            MessageState.REJECTED,
            MessageState.DUPLICATE,
            MessageState.ANSWERED,
            MessageState.DISCARDED,
        } == FINAL_STATES


def test_core_module_is_pure() -> None:
    """gateway.core.states imports no event loop, broker, web framework or clock module."""
    tree = ast.parse(Path(states.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "aiohttp", "aio_pika", "time", "datetime", "os"}


# --- the claim-and-lease rule (gateway.core.lease), beside the table it reads ------------------

from datetime import UTC, datetime, timedelta  # noqa: E402  (kept with the tests that use it)

from gateway.core import lease  # noqa: E402
from gateway.core.lease import ClaimResult  # noqa: E402

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
LEASES = {
    "none": None,
    "run out": NOW - timedelta(seconds=1),
    "ends now": NOW,
    "live": NOW + timedelta(seconds=1),
}
EXPECTED_CLAIMS = {
    # state: answer with the same bytes, lease over / lease live (other bytes: see below)
    MessageState.ACCEPTED: (ClaimResult.GRANTED, ClaimResult.GRANTED),
    MessageState.QUEUED: (ClaimResult.GRANTED, ClaimResult.GRANTED),
    MessageState.RETRYING: (ClaimResult.GRANTED, ClaimResult.GRANTED),
    MessageState.DELIVERING: (ClaimResult.GRANTED, ClaimResult.BUSY),
    MessageState.DELIVERED: (ClaimResult.DELIVERED, ClaimResult.DELIVERED),
    MessageState.RECEIPTED: (ClaimResult.DELIVERED, ClaimResult.DELIVERED),
    MessageState.ANSWERED: (ClaimResult.DELIVERED, ClaimResult.DELIVERED),
    MessageState.DEAD: (ClaimResult.NOT_DELIVERABLE, ClaimResult.NOT_DELIVERABLE),
    MessageState.REJECTED: (ClaimResult.NOT_DELIVERABLE, ClaimResult.NOT_DELIVERABLE),
    MessageState.DUPLICATE: (ClaimResult.NOT_DELIVERABLE, ClaimResult.NOT_DELIVERABLE),
    MessageState.DISCARDED: (ClaimResult.NOT_DELIVERABLE, ClaimResult.NOT_DELIVERABLE),
    MessageState.RECEIVED: (ClaimResult.NOT_DELIVERABLE, ClaimResult.NOT_DELIVERABLE),
}


class TestClaimRule:
    """Every state, lease and digest case of the claim rule, written out by hand."""

    def test_every_state_is_listed(self) -> None:
        """The hand-written expectations cover every state there is."""
        assert set(EXPECTED_CLAIMS) == set(MessageState)

    @pytest.mark.parametrize(
        ("state", "lease_name", "same_bytes"),
        list(itertools.product(MessageState, LEASES, (True, False))),
    )
    def test_claim_answers(self, state: MessageState, lease_name: str, same_bytes: bool) -> None:
        """The answer for one state, lease and digest; other bytes turn only GRANTED around."""
        over, live = EXPECTED_CLAIMS[state]
        expected = live if lease_name == "live" else over
        if not same_bytes and expected is ClaimResult.GRANTED:
            expected = ClaimResult.OTHER_BYTES
        answer = lease.claim(state, lease_until=LEASES[lease_name], now=NOW, same_bytes=same_bytes)
        assert answer is expected

    @pytest.mark.parametrize("same_bytes", [True, False])
    def test_unknown_message(self, same_bytes: bool) -> None:
        """No row at all is UNKNOWN, whatever bytes are offered."""
        answer = lease.claim(None, lease_until=None, now=NOW, same_bytes=same_bytes)
        assert answer is ClaimResult.UNKNOWN

    def test_a_lease_ending_now_is_over(self) -> None:
        """A lease that ends at the very instant of the claim no longer holds the message."""
        assert lease.lease_over(NOW, NOW)
        assert not lease.lease_over(NOW + timedelta(microseconds=1), NOW)

    def test_grant_sets_for_the_sql(self) -> None:
        """The sets the claim statements are written from are read off the rule correctly."""
        outright, after_lease = lease.grant_states()
        assert (
            outright
            == CLAIMABLE_STATES
            == {MessageState.ACCEPTED, MessageState.QUEUED, MessageState.RETRYING}
        )
        assert after_lease == {MessageState.DELIVERING}

    def test_granted_only_where_the_table_allows_delivering(self) -> None:
        """A claim is granted only in a state the table lets move to DELIVERING."""
        for state in MessageState:
            answer = lease.claim(state, lease_until=None, now=NOW)
            moves_on = TRANSITIONS[state].get(MessageState.DELIVERING) is MessageState.DELIVERING
            assert (answer is ClaimResult.GRANTED) == moves_on, state

    def test_delivered_states_are_never_handed_over_again(self) -> None:
        """Every state in DELIVERED_STATES answers DELIVERED, with any lease or bytes."""
        for state, until, same in itertools.product(DELIVERED_STATES, LEASES.values(), (1, 0)):
            answer = lease.claim(state, lease_until=until, now=NOW, same_bytes=bool(same))
            assert answer is ClaimResult.DELIVERED

    @pytest.mark.parametrize("answer", list(ClaimResult))
    def test_a_refused_claim_is_never_granted(self, answer: ClaimResult) -> None:
        """After the atomic statement took nothing, GRANTED becomes BUSY; the rest stand."""
        expected = ClaimResult.BUSY if answer is ClaimResult.GRANTED else answer
        assert lease.refused(answer) is expected


def test_waiting_states_are_those_not_yet_handed_over() -> None:
    """WAITING_STATES is the claimable states plus DELIVERING, shared by inbox and metrics."""
    from gateway.core.states import WAITING_STATES
    from gateway.journal.contract import ESCALATABLE
    from gateway.metrics import WAITING_STATES as METRICS_WAITING

    expected = {
        MessageState.ACCEPTED,
        MessageState.QUEUED,
        MessageState.RETRYING,
        MessageState.DELIVERING,
    }
    assert WAITING_STATES == ESCALATABLE == set(METRICS_WAITING) == expected
