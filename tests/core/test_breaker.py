"""The circuit breaker's transitions, with the clock passed in as plain numbers."""

from __future__ import annotations

import pytest

from gateway.core.breaker import (
    Admission,
    BreakerPhase,
    BreakerPolicy,
    BreakerState,
)

POLICY = BreakerPolicy(failure_threshold=3, reset_seconds=10.0)


def _opened_at(now: float) -> BreakerState:
    """A breaker that opened at ``now`` after three failures."""
    state = BreakerState()
    for _ in range(3):
        state = POLICY.failed(state, Admission.ALLOW, now)
    assert state.phase is BreakerPhase.OPEN
    return state


def test_closed_breaker_lets_calls_through() -> None:
    """Closed: every call is allowed and the state is unchanged."""
    decision = POLICY.admit(BreakerState(), now=0.0)
    assert decision.admission is Admission.ALLOW
    assert decision.state == BreakerState()


def test_failures_below_the_threshold_keep_it_closed() -> None:
    """Closed: failures are counted but do not open before the threshold."""
    state = POLICY.failed(BreakerState(), Admission.ALLOW, 1.0)
    state = POLICY.failed(state, Admission.ALLOW, 2.0)
    assert state == BreakerState(phase=BreakerPhase.CLOSED, failures=2)


def test_success_resets_the_consecutive_failure_count() -> None:
    """Closed: a success in between means failures are no longer consecutive."""
    state = POLICY.failed(BreakerState(), Admission.ALLOW, 1.0)
    state = POLICY.failed(state, Admission.ALLOW, 2.0)
    state = POLICY.succeeded(state, Admission.ALLOW)
    state = POLICY.failed(state, Admission.ALLOW, 3.0)
    assert state.phase is BreakerPhase.CLOSED
    assert state.failures == 1


def test_threshold_failures_open_it() -> None:
    """Closed -> open after N consecutive failures, remembering when."""
    state = _opened_at(5.0)
    assert state.failures == 3
    assert state.opened_at == 5.0
    assert POLICY.retry_at(state) == 15.0


def test_open_breaker_refuses_until_the_reset_time() -> None:
    """Open: calls are refused before reset_seconds have passed."""
    state = _opened_at(5.0)
    decision = POLICY.admit(state, now=14.9)
    assert decision.admission is Admission.REFUSE
    assert decision.state == state


def test_open_breaker_lets_one_trial_through_after_the_reset_time() -> None:
    """Open -> half-open: the first call after the reset time is the trial."""
    decision = POLICY.admit(_opened_at(5.0), now=15.0)
    assert decision.admission is Admission.TRIAL
    assert decision.state.phase is BreakerPhase.HALF_OPEN


def test_half_open_refuses_other_calls_while_the_trial_runs() -> None:
    """Half-open: only one trial at a time; others fail fast."""
    trial = POLICY.admit(_opened_at(5.0), now=15.0).state
    assert POLICY.admit(trial, now=16.0).admission is Admission.REFUSE


def test_successful_trial_closes_it() -> None:
    """Half-open -> closed when the trial succeeds; the failure count starts again."""
    trial = POLICY.admit(_opened_at(5.0), now=15.0).state
    assert POLICY.succeeded(trial, Admission.TRIAL) == BreakerState()


def test_failed_trial_opens_it_again_for_another_period() -> None:
    """Half-open -> open when the trial fails, with a fresh reset time."""
    trial = POLICY.admit(_opened_at(5.0), now=15.0).state
    state = POLICY.failed(trial, Admission.TRIAL, 15.5)
    assert state.phase is BreakerPhase.OPEN
    assert POLICY.retry_at(state) == 25.5
    assert POLICY.admit(state, now=20.0).admission is Admission.REFUSE


def test_abandoned_trial_lets_the_next_call_be_the_trial() -> None:
    """Half-open -> open (reset time passed) when the trial was cancelled without an outcome."""
    trial = POLICY.admit(_opened_at(5.0), now=15.0).state
    state = POLICY.abandoned(trial, Admission.TRIAL)
    assert state.phase is BreakerPhase.OPEN
    assert POLICY.admit(state, now=15.1).admission is Admission.TRIAL


def test_abandoned_ordinary_call_changes_nothing() -> None:
    """Closed: a cancelled call says nothing about the receiver."""
    state = POLICY.failed(BreakerState(), Admission.ALLOW, 1.0)
    assert POLICY.abandoned(state, Admission.ALLOW) == state


def test_late_outcomes_of_earlier_calls_do_not_move_an_open_breaker() -> None:
    """Open: success or failure of calls admitted before it opened is ignored."""
    state = _opened_at(5.0)
    assert POLICY.succeeded(state, Admission.ALLOW) == state
    assert POLICY.failed(state, Admission.ALLOW, 8.0) == state


def test_late_outcomes_of_non_trial_calls_do_not_decide_half_open() -> None:
    """Half-open: only the trial's outcome closes or reopens the breaker."""
    trial = POLICY.admit(_opened_at(5.0), now=15.0).state
    assert POLICY.succeeded(trial, Admission.ALLOW) == trial
    assert POLICY.failed(trial, Admission.ALLOW, 16.0) == trial


def test_threshold_of_one_opens_on_the_first_failure() -> None:
    """A threshold of 1 opens on the first failure."""
    policy = BreakerPolicy(failure_threshold=1, reset_seconds=1.0)
    state = policy.failed(BreakerState(), Admission.ALLOW, 0.0)
    assert state.phase is BreakerPhase.OPEN


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0), (3, -1.0)])
def test_nonsense_policy_is_refused(threshold: int, reset: float) -> None:
    """A threshold below 1 or a non-positive reset time is a programming error."""
    with pytest.raises(ValueError, match="must be"):
        BreakerPolicy(failure_threshold=threshold, reset_seconds=reset)
