"""The retry decision after a failed delivery, as a pure function of the attempt count.

A temporary failure goes to the next backoff step of the schedule; once every step has been
used, the message is dead-lettered as ``retries-exhausted``. A permanent failure is
dead-lettered at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryLater:
    """Send the message to backoff step ``step`` and wait ``delay_seconds``."""

    step: int
    attempt: int
    delay_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveUp:
    """Every step has been tried; park the message."""

    attempts: int


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays between delivery attempts, e.g. 5 s, 30 s, 2 min, 10 min, 1 h."""

    delays_seconds: tuple[float, ...]

    def after_failure(self, failed_attempts: int) -> RetryLater | GiveUp:
        """What to do once ``failed_attempts`` attempts (1 = the first) have failed."""
        step = failed_attempts - 1
        if step < 0:
            raise ValueError("failed_attempts counts from 1")
        if step >= len(self.delays_seconds):
            return GiveUp(attempts=failed_attempts)
        return RetryLater(
            step=step, attempt=failed_attempts + 1, delay_seconds=self.delays_seconds[step]
        )
