"""Small parts of the hot path, each beside the alternative it was chosen over, same run.

    .venv/bin/python bench/bench_parts.py

- drop-folder write of a 7.5 KB document: ``fsync`` of the file (what the adapter does)
  against ``fdatasync``, both followed by the folder fsync; wall time and the process's CPU;
- one outcome log line: structlog writing it itself (``gateway.logs``) against the same
  processors routed through the stdlib logging machinery;
- reading the message header: ``read_envelope`` (one pass over the header) against one
  ElementPath ``find`` per field.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import measure  # noqa: E402  (beside this file)

from gateway.core.envelope import NS_COMMON, read_envelope  # noqa: E402
from gateway.core.parsing import parse  # noqa: E402
from gateway.logs import configure_logging  # noqa: E402
from gateway.settings import LogSettings  # noqa: E402

PAYLOAD = os.urandom(3750).hex().encode()  # 7.5 KB
SAMPLE = ROOT / "samples" / "formd" / "valid" / "sg-th-basic.xml"


def _write(folder: Path, name: str, sync: Callable[[int], None]) -> None:
    temporary = folder / f".{name}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(handle, PAYLOAD)
        sync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, folder / f"{name}.xml")
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def bench_writes(rounds: int = 5, count: int = 200) -> None:
    """fdatasync against fsync, alternating rounds; medians of wall and CPU per document."""
    results: dict[str, list[tuple[float, float]]] = {"fdatasync": [], "fsync": []}
    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        for round_number in range(rounds):
            for name, sync in (("fdatasync", os.fdatasync), ("fsync", os.fsync)):
                wall, cpu = time.perf_counter(), time.process_time()
                for i in range(count):
                    _write(Path(folder), f"{name}-{round_number}-{i}", sync)
                results[name].append(
                    ((time.perf_counter() - wall) / count, (time.process_time() - cpu) / count)
                )
    for name, samples in results.items():
        walls = sorted(w for w, _ in samples)
        cpus = sorted(c for _, c in samples)
        print(
            f"  drop-folder write, {name:<9} + folder fsync: "
            f"{walls[len(walls) // 2] * 1e3:6.3f} ms wall, {cpus[len(cpus) // 2] * 1e3:6.3f} ms CPU"
        )


def _log_line(logger: Any) -> None:
    logger.info(
        "message_accepted",
        outcome="accepted",
        channel="http",
        route="TH.formd",
        state="QUEUED",
        size=7489,
        duration_ms=12.3,
    )


def bench_logging() -> None:
    """One outcome line: the gateway's configuration against stdlib routing."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        configure_logging(LogSettings(level="info", format="json"), stream=sink)
        structlog.contextvars.bind_contextvars(message_id="6f1c2d3e", sender="SG", recipient="TH")
        direct = measure(lambda: _log_line(structlog.get_logger("bench")))
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.dict_tracebacks,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            cache_logger_on_first_use=False,
        )
        routed = measure(lambda: _log_line(structlog.get_logger("bench")))
        structlog.contextvars.clear_contextvars()
    print(f"  log line, written by structlog:    {direct.median * 1e6:7.1f} us")
    print(f"  log line, through stdlib logging:  {routed.median * 1e6:7.1f} us")


def _header_by_find(root: etree._Element) -> tuple[str | None, ...]:
    cm = f"{{{NS_COMMON}}}"
    header = root.find(f"{cm}MessageHeader")
    assert header is not None
    return tuple(
        header.findtext(f"{cm}{name}")
        for name in (
            "MessageID",
            "SenderParty/" + cm + "CountryCode",
            "ReceiverParty/" + cm + "CountryCode",
            "DocumentTypeCode",
            "FunctionCode",
            "CreationDateTime",
            "ReferencedMessageID",
            "TestIndicator",
        )
    )


def bench_header() -> None:
    """read_envelope against a find per field (no checks, no Envelope: a floor for find)."""
    root = parse(SAMPLE.read_bytes())
    ours = measure(lambda: read_envelope(root))
    finds = measure(lambda: _header_by_find(root))
    print(f"  read_envelope (one pass, checked):  {ours.median * 1e6:7.1f} us")
    print(f"  one ElementPath find per field:     {finds.median * 1e6:7.1f} us")


def main() -> None:
    """Run the three comparisons."""
    print("parts of the hot path, each beside its alternative (medians, same run)")
    bench_writes()
    bench_logging()
    bench_header()


if __name__ == "__main__":
    main()
