"""The retry schedule decides the next step from the attempt count alone."""

from __future__ import annotations

import pytest

from gateway.core.retry import GiveUp, RetryLater, RetrySchedule

SCHEDULE = RetrySchedule((5.0, 30.0, 120.0))


def test_each_failure_moves_one_step_along() -> None:
    """Failures 1..3 wait 5 s, 30 s and 120 s before attempts 2..4."""
    decisions = [SCHEDULE.after_failure(n) for n in (1, 2, 3)]
    assert decisions == [
        RetryLater(step=0, attempt=2, delay_seconds=5.0),
        RetryLater(step=1, attempt=3, delay_seconds=30.0),
        RetryLater(step=2, attempt=4, delay_seconds=120.0),
    ]


def test_gives_up_after_the_last_step() -> None:
    """The failure after the last step gives up, counting every attempt."""
    assert SCHEDULE.after_failure(4) == GiveUp(attempts=4)
    assert RetrySchedule(()).after_failure(1) == GiveUp(attempts=1)


def test_attempts_count_from_one() -> None:
    """Zero failed attempts is a programming error."""
    with pytest.raises(ValueError, match="from 1"):
        SCHEDULE.after_failure(0)
