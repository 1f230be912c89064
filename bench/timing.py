"""Shared timing for the benchmarks: calibrated loops, median of several runs.

Every benchmark prints its figure beside a baseline measured in the same run, because this
2-core machine is noisy (limits.md: +-10-20 % between runs); ratios survive the noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per operation: median and spread over the timed runs."""

    median: float
    low: float
    high: float

    @property
    def per_second(self) -> float:
        """Operations per second at the median."""
        return 1.0 / self.median

    def describe(self) -> str:
        """A short human line: milliseconds and operations per second."""
        return (
            f"{self.median * 1000:8.3f} ms/op  ({self.per_second:9,.0f} op/s; "
            f"runs {self.low * 1000:.3f}-{self.high * 1000:.3f} ms)"
        )


def measure(operation: Callable[[], object], *, runs: int = 7, min_seconds: float = 0.3) -> Timing:
    """Time ``operation``: calibrate a loop to ``min_seconds``, warm up, then ``runs`` runs."""
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            operation()
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            break
        loops = max(loops * 2, int(loops * min_seconds / max(elapsed, 1e-9)) + 1)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(loops):
            operation()
        samples.append((time.perf_counter() - started) / loops)
    return Timing(statistics.median(samples), min(samples), max(samples))
