"""Validation speed: parse + XSD + rules on the 5 KB and ~1 MB Form D samples.

    .venv/bin/python bench/bench_validation.py

Prints, for each sample, the median time per document of a bare lxml baseline
(``etree.fromstring`` + ``XMLSchema.validate``) measured in the same run, then the gateway's
full ``parse`` (hardened) + ``Validator.check`` (XSD and business rules), and each stage
alone. Targets (issue 3): the 5 KB sample at >= 5,000 documents/s on one core, the 1 MB
sample in <= 40 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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


def median_seconds(fn: Callable[[], object], *, min_time: float = 0.4, runs: int = 7) -> float:
    """Median per-call time over ``runs`` timed runs, each at least ``min_time`` long."""
    fn()  # warm-up
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start >= min_time:
            break
        loops *= 2
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def _row(name: str, seconds: float) -> str:
    return f"  {name:<44} {seconds * 1e6:>10.1f} us  {1 / seconds:>10,.0f} docs/s"


def bench(path: Path, validator: Validator, runs: int) -> float:
    """Print the figures for one sample; return the full check's median seconds."""
    data = path.read_bytes()
    schema = validator.schemas[DocumentType.FORM_D]
    root = parse(data, LIMITS)
    report = validator.check(root, now=NOW)
    assert report.valid, report.findings
    full = median_seconds(lambda: validator.check(parse(data, LIMITS), now=NOW), runs=runs)
    print(f"{path.name} ({len(data):,} bytes)")
    print(
        _row(
            "baseline: lxml fromstring + XMLSchema.validate",
            median_seconds(lambda: schema.validate(etree.fromstring(data)), runs=runs),
        )
    )
    print(_row("gateway: parse + check (XSD + rules)", full))
    print(_row("  parse (hardened) alone", median_seconds(lambda: parse(data, LIMITS), runs=runs)))
    print(
        _row(
            "  XSD validate alone (pre-parsed)",
            median_seconds(lambda: schema.validate(root), runs=runs),
        )
    )
    print(
        _row(
            "  business rules alone (pre-parsed)",
            median_seconds(lambda: check_rules(root, DocumentType.FORM_D, now=NOW), runs=runs),
        )
    )
    return full


def main() -> None:
    """Run both benchmarks and compare with the targets."""
    validator = Validator.load(ROOT / "xsd")
    small = bench(SMALL, validator, runs=7)
    large = bench(LARGE, validator, runs=5)
    print()
    print(
        f"5 KB Form D: {1 / small:,.0f} docs/s (target >= 5,000): "
        f"{'OK' if 1 / small >= 5_000 else 'MISSED'}"
    )
    print(
        f"1 MB Form D: {large * 1e3:.1f} ms (target <= 40 ms): "
        f"{'OK' if large <= 0.040 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
