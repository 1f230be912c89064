"""Validation speed: parse + XSD + rules on the 5 KB and ~1 MB Form D samples.

    .venv/bin/python bench/bench_validation.py

For each sample it times, interleaved round by round so that the machine's noise hits both
alike, a bare lxml baseline (``etree.fromstring`` + ``XMLSchema.validate``) and the gateway's
full path (hardened ``parse`` + ``Validator.check``: XSD and business rules), then each stage
alone. It ends with one verdict line per target of issue 3 (the 5 KB sample at >= 5,000
documents/s on one core, the 1 MB sample in <= 40 ms): the figure, the target, OK or MISSED,
the ratio to the baseline of the same run and the spread over the rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.parsing import ParseLimits, parse
from gateway.core.rules import check_rules
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "samples/formd/valid/sg-th-basic.xml"
LARGE = ROOT / "samples/formd/valid/sg-vn-large-1mb.xml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
LIMITS = ParseLimits(max_bytes=8 * 1024 * 1024)

SMALL_TARGET_DOCS_PER_SECOND = 5_000
LARGE_TARGET_SECONDS = 0.040
# The issue's own reference: on the machine it was written for, bare lxml parsed and validated
# the 5 KB document in about 0.09 ms. 5,000 documents/s there is 0.2 ms, 2.22x that baseline;
# the ratio carries the target over to whatever speed this machine runs at today.
ISSUE_BASELINE_SECONDS = 0.09e-3


def _loops_for(fn: Callable[[], object], min_time: float) -> int:
    """How many calls of ``fn`` take at least ``min_time`` seconds (after a warm-up call)."""
    fn()
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start >= min_time:
            return loops
        loops *= 2


def _per_call(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def median_seconds(fn: Callable[[], object], *, min_time: float = 0.2, runs: int = 7) -> float:
    """Median per-call time over ``runs`` timed runs, each at least ``min_time`` long."""
    loops = _loops_for(fn, min_time)
    return statistics.median(_per_call(fn, loops) for _ in range(runs))


@dataclass(frozen=True, slots=True)
class Paired:
    """The gateway's and the baseline's seconds per document, timed in alternating rounds."""

    gateway: list[float]
    baseline: list[float]

    @property
    def median(self) -> float:
        """The gateway's median seconds per document."""
        return statistics.median(self.gateway)

    @property
    def baseline_median(self) -> float:
        """The baseline's median seconds per document."""
        return statistics.median(self.baseline)

    @property
    def ratio(self) -> float:
        """Median over the rounds of gateway / baseline (both timed in the same round)."""
        return statistics.median(g / b for g, b in zip(self.gateway, self.baseline, strict=True))


def paired(
    gateway: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int,
    min_time: float = 0.2,
) -> Paired:
    """Time ``gateway`` and ``baseline`` alternately, ``rounds`` times each."""
    gateway_loops = _loops_for(gateway, min_time)
    baseline_loops = _loops_for(baseline, min_time)
    gateway_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(rounds):
        baseline_times.append(_per_call(baseline, baseline_loops))
        gateway_times.append(_per_call(gateway, gateway_loops))
    return Paired(gateway_times, baseline_times)


def _row(name: str, seconds: float) -> str:
    return f"  {name:<46} {seconds * 1e6:>10.1f} us  {1 / seconds:>10,.0f} docs/s"


def bench(path: Path, validator: Validator, rounds: int) -> Paired:
    """Print the figures for one sample; return the full path's timings beside the baseline."""
    data = path.read_bytes()
    schema = validator.schemas[DocumentType.FORM_D]
    root = parse(data, LIMITS)
    report = validator.check(root, now=NOW)
    assert report.valid, report.findings  # a benchmark of a failing check is moot
    timings = paired(
        lambda: validator.check(parse(data, LIMITS), now=NOW),
        lambda: schema.validate(etree.fromstring(data)),
        rounds=rounds,
    )
    print(f"{path.name} ({len(data):,} bytes), medians of {rounds} alternating rounds")
    print(_row("baseline: lxml fromstring + XMLSchema.validate", timings.baseline_median))
    print(_row("gateway: parse + check (XSD + rules)", timings.median))
    print(f"  {'  ratio gateway / baseline (per round)':<46} {timings.ratio:>10.2f} x")
    print(_row("  parse (hardened) alone", median_seconds(lambda: parse(data, LIMITS))))
    print(_row("  XSD validate alone (pre-parsed)", median_seconds(lambda: schema.validate(root))))
    print(
        _row(
            "  business rules alone (pre-parsed)",
            median_seconds(lambda: check_rules(root, DocumentType.FORM_D, now=NOW)),
        )
    )
    return timings


def verdicts(small: Paired, large: Paired) -> list[str]:
    """One line per target of issue 3: figure, target, OK/MISSED, baseline ratio and spread."""
    small_rate = 1 / small.median
    small_budget = 1 / SMALL_TARGET_DOCS_PER_SECOND
    large_ms = large.median * 1e3
    return [
        f"VERDICT 5 KB Form D: {small_rate:,.0f} docs/s "
        f"(target >= {SMALL_TARGET_DOCS_PER_SECOND:,}): "
        f"{'OK' if small_rate >= SMALL_TARGET_DOCS_PER_SECOND else 'MISSED'}; "
        f"{small.median * 1e6:.1f} us = {small.ratio:.2f}x the baseline's "
        f"{small.baseline_median * 1e6:.1f} us (the target allows "
        f"{small_budget / small.baseline_median:.2f}x); rounds "
        f"{1 / max(small.gateway):,.0f}-{1 / min(small.gateway):,.0f} docs/s",
        f"VERDICT 5 KB Form D as a ratio: {small.ratio:.2f}x the same run's baseline (target "
        f"<= {small_budget / ISSUE_BASELINE_SECONDS:.2f}x: 5,000/s where the issue measured the "
        f"baseline at {ISSUE_BASELINE_SECONDS * 1e3:.2f} ms): "
        f"{'OK' if small.ratio <= small_budget / ISSUE_BASELINE_SECONDS else 'MISSED'}",
        f"VERDICT 1 MB Form D: {large_ms:.1f} ms (target <= {LARGE_TARGET_SECONDS * 1e3:.0f} ms): "
        f"{'OK' if large.median <= LARGE_TARGET_SECONDS else 'MISSED'}; "
        f"{large.ratio:.2f}x the baseline's {large.baseline_median * 1e3:.1f} ms (the target "
        f"allows {LARGE_TARGET_SECONDS / large.baseline_median:.2f}x); rounds "
        f"{min(large.gateway) * 1e3:.1f}-{max(large.gateway) * 1e3:.1f} ms",
    ]


def main() -> None:
    """Run both benchmarks and compare with the targets."""
    validator = Validator.load(ROOT / "xsd")
    small = bench(SMALL, validator, rounds=9)
    large = bench(LARGE, validator, rounds=5)
    print()
    for line in verdicts(small, large):
        print(line)


if __name__ == "__main__":
    main()
