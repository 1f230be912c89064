"""The register checks read the tree ingest parsed, instead of parsing the payload again.

    .venv/bin/python bench/bench_register_parse.py

Before, a certified-exporter register update, an Origin Declaration and an ACDD with AEO ids
were parsed twice more after ingest: once for the register check (``RegisterKeeper.check``)
and once for keeping or linking it (``RegisterKeeper.keep``). Now both read
``Accepted.root``. The figure per document is those two hardened parses, beside the ingest's
own parse and validation (XSD and rules) of the same document in the same run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import measure  # noqa: E402  (beside this file)

from gateway.core.parsing import ParseLimits, parse  # noqa: E402
from gateway.core.validation import Validator  # noqa: E402

SAMPLES = {
    "certified-exporter register update": "ce-register/valid/sg-1-grant-orchid-foods.xml",
    "Origin Declaration": "origin-declaration/valid/sg-my-orchid-foods.xml",
    "ACDD with AEO ids": "acdd/valid/sg-my-electronics.xml",
}
PARSES_SAVED = 2
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def main() -> None:
    """Print, per document type, the saving and the ingest it is compared with."""
    limits = ParseLimits()
    validator = Validator.load(ROOT / "xsd")
    for name, path in SAMPLES.items():
        data = (ROOT / "samples" / path).read_bytes()
        parsed = measure(lambda data=data: parse(data, limits))  # type: ignore[misc]
        ingest = measure(
            lambda data=data: validator.check(parse(data, limits), now=NOW)  # type: ignore[misc]
        )
        saved = parsed.median * PARSES_SAVED
        print(f"{name} ({len(data)} bytes)")
        print(f"  one hardened parse     {parsed.describe()}")
        print(f"  ingest parse+validate  {ingest.describe()}")
        print(
            f"  saved per document: {saved * 1000:.3f} ms "
            f"({saved / (ingest.median + saved) * 100:.0f} % of ingest with the two extra parses)"
        )


if __name__ == "__main__":
    main()
