"""A circuit breaker for one receiving party, as pure transitions over an immutable state.

    closed ──N consecutive failures──▶ open ──reset time passed, next call──▶ half-open
      ▲                                  ▲                                      │
      └──────────── trial succeeded ─────┼──────────────────────────────────────┤
                                         └──────────── trial failed ────────────┘

Closed lets every call through and counts consecutive failures; a success resets the count.
Open refuses every call until ``reset_seconds`` have passed since it opened. The first call
after that becomes the *trial* (half-open): it is let through alone, every other call is
refused until its outcome is known. A successful trial closes the breaker, a failed one opens
it again for another ``reset_seconds``.

Outcomes of calls admitted before the breaker opened (or that are not the trial) no longer move
an open or half-open breaker: only time and the trial do. The caller owns the clock: every
transition that needs the time takes ``now`` (seconds from any monotonic clock) as a value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class BreakerPhase(enum.Enum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"  # the reset time has passed and one trial call is under way


class Admission(enum.Enum):
    """What the breaker says to one call."""

    ALLOW = "allow"  # closed: go ahead
    TRIAL = "trial"  # half-open: go ahead, and report back: this call decides
    REFUSE = "refuse"  # open, or a trial is already under way: fail fast


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerState:
    """The breaker's memory: phase, consecutive failures, when it last opened."""

    phase: BreakerPhase = BreakerPhase.CLOSED
    failures: int = 0
    opened_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The answer to one call, and the state to keep afterwards."""

    admission: Admission
    state: BreakerState


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """How many failures open the breaker, and how long it stays open."""

    failure_threshold: int = 5
    reset_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.reset_seconds <= 0:
            raise ValueError("reset_seconds must be greater than 0")

    def admit(self, state: BreakerState, now: float) -> Decision:
        """Decide whether a call may go through at time ``now``."""
        if state.phase is BreakerPhase.CLOSED:
            return Decision(admission=Admission.ALLOW, state=state)
        if state.phase is BreakerPhase.HALF_OPEN:
            return Decision(admission=Admission.REFUSE, state=state)
        retry_at = self.retry_at(state)
        if retry_at is not None and now >= retry_at:
            trial = replace(state, phase=BreakerPhase.HALF_OPEN)
            return Decision(admission=Admission.TRIAL, state=trial)
        return Decision(admission=Admission.REFUSE, state=state)

    def succeeded(self, state: BreakerState, admission: Admission) -> BreakerState:
        """Record that a call admitted with ``admission`` reached a working receiver."""
        if state.phase is BreakerPhase.CLOSED:
            return BreakerState() if state.failures else state
        if state.phase is BreakerPhase.HALF_OPEN and admission is Admission.TRIAL:
            return BreakerState()
        return state

    def failed(self, state: BreakerState, admission: Admission, now: float) -> BreakerState:
        """Record that a call admitted with ``admission`` found the receiver unavailable."""
        if state.phase is BreakerPhase.CLOSED:
            failures = state.failures + 1
            if failures >= self.failure_threshold:
                return BreakerState(phase=BreakerPhase.OPEN, failures=failures, opened_at=now)
            return replace(state, failures=failures)
        if state.phase is BreakerPhase.HALF_OPEN and admission is Admission.TRIAL:
            return BreakerState(phase=BreakerPhase.OPEN, failures=state.failures, opened_at=now)
        return state

    def abandoned(self, state: BreakerState, admission: Admission) -> BreakerState:
        """Record that a call ended without telling anything about the receiver (cancelled).

        An abandoned trial puts the breaker back to open with its reset time already passed, so
        the next call becomes the trial instead of the breaker waiting forever for an answer.
        """
        if state.phase is BreakerPhase.HALF_OPEN and admission is Admission.TRIAL:
            return replace(state, phase=BreakerPhase.OPEN)
        return state

    def retry_at(self, state: BreakerState) -> float | None:
        """When an open breaker lets its next trial through (``None`` unless open)."""
        if state.phase is not BreakerPhase.OPEN or state.opened_at is None:
            return None
        return state.opened_at + self.reset_seconds
