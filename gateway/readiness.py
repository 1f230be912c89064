"""Readiness that is the same from every worker, and says why it is not ready.

Each worker assesses itself (``worker_readiness``: broker, journal, trust store, draining) and,
under a supervisor, writes what it found to ``<run dir>/worker-<N>.json`` every
``REPORT_SECONDS`` and at once when it starts draining (``WorkerReport``). The supervisor
(``gateway.workers``) reads every worker's report and writes one verdict,
``<run dir>/readiness.json`` (``ReadinessBoard.aggregate``): ready only when every worker it
runs has reported, recently, that it is ready, and the supervisor is not stopping. Every worker's
``/readyz`` answers that one file (``ReadinessBoard.read``), so whichever worker takes the
request, the answer is the same.

The body names each reason: ``broker: disconnected``, ``journal: read-only (...)``,
``draining``, ``worker: starting or not reporting``, with the workers that have it. A failed
trust reload is named (``trust``: ``reload-failed``, ``trust_reason``) without making the
gateway unready: the previous trust is kept (see ``gateway.web.readiness``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPORT_SECONDS = 0.5
"""How often a worker writes its report, and the supervisor its verdict."""
STALE_SECONDS = 3.0
"""A report or verdict older than this no longer counts (its writer is stuck or gone)."""
VERDICT = "readiness.json"
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - only as mkdtemp's parent: a private 0700 folder
GOOD = {"broker": "connected", "journal": "ok", "trust": "ok"}
"""The state of each part that a ready worker reports."""

Answer = tuple[int, dict[str, Any]]


def worker_readiness(
    *,
    broker: str,
    journal: str,
    journal_reason: str | None,
    trust_problems: Iterable[str],
    draining: bool,
) -> Answer:
    """One worker's readiness (status, body) from the state of its parts.

    ``broker`` is ``connected``, ``disconnected`` or ``blocked``; ``journal`` is the journal's
    ``JournalStatus.state`` (``ok`` or why not).
    """
    reasons: list[str] = []
    if broker != "connected":
        reasons.append(f"broker: {broker}")
    if journal != "ok":
        reasons.append(f"journal: {journal}" + (f" ({journal_reason})" if journal_reason else ""))
    problems = sorted(trust_problems)
    if draining:
        reasons.append("draining: the gateway is stopping")
    body: dict[str, Any] = {
        "ready": not reasons,
        "broker": broker,
        "journal": journal,
        "trust": "reload-failed" if problems else "ok",
        "draining": draining,
        "reasons": reasons,
    }
    if journal_reason:
        body["journal_reason"] = journal_reason
    if problems:  # named, not a reason: the previous trust is kept (see web.readiness)
        body["trust_reason"] = "; ".join(problems)[:500]
    return (200 if not reasons else 503), body


def run_dir() -> Path:
    """A fresh folder for one supervisor's reports and verdict: in memory (``/dev/shm``) where
    there is one, since every worker rewrites its report twice a second."""
    memory = Path(SHARED_MEMORY)
    base = str(memory) if memory.is_dir() and os.access(memory, os.W_OK | os.X_OK) else None
    return Path(tempfile.mkdtemp(prefix="asw-run-", dir=base))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class WorkerReport:
    """A worker's side: where it writes what it found."""

    def __init__(self, run_dir: Path, index: int) -> None:
        self.path = run_dir / f"worker-{index}.json"

    def write(self, answer: Answer) -> None:
        """Record this worker's readiness now."""
        _status, body = answer
        _write_json(self.path, {"pid": os.getpid(), "at": time.time(), "body": body})


class ReadinessBoard:
    """The supervisor's verdict, written from the workers' reports and read by every worker."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.verdict = run_dir / VERDICT

    def report(self, index: int) -> WorkerReport:
        """Where worker ``index`` reports."""
        return WorkerReport(self.run_dir, index)

    def reported(self, index: int, pid: int | None) -> bool:
        """Whether worker ``index`` running as ``pid`` has reported at least once."""
        found = _read_json(self.run_dir / f"worker-{index}.json")
        return found is not None and pid is not None and found.get("pid") == pid

    def aggregate(self, workers: Mapping[int, int | None], *, stopping: bool) -> Answer:
        """Write (and return) the verdict over ``workers`` (index -> pid of the running one).

        A report counts only when it comes from that pid and is fresh; reasons are listed
        once each, in a stable order, with the workers that have them.
        """
        now = time.time()
        reasons: dict[str, list[int]] = {}
        states: dict[str, list[str]] = {"broker": [], "journal": [], "trust": []}
        ready_workers = 0
        details: dict[str, str] = {}
        for index, pid in sorted(workers.items()):
            found = _read_json(self.run_dir / f"worker-{index}.json")
            fresh = (
                found is not None
                and found.get("pid") == pid
                and now - float(found.get("at", 0)) <= STALE_SECONDS
            )
            if not fresh or found is None:
                reasons.setdefault("worker: starting or not reporting", []).append(index)
                continue
            said = found.get("body", {})
            for reason in said.get("reasons", []):
                reasons.setdefault(str(reason), []).append(index)
            for part, values in states.items():
                values.append(str(said.get(part, "unknown")))
            for detail in ("journal_reason", "trust_reason"):
                if said.get(detail):
                    details.setdefault(detail, str(said[detail]))  # the lowest worker's
            ready_workers += bool(said.get("ready"))
        if stopping:
            reasons.setdefault("draining: the gateway is stopping", [])
        ready = not reasons and ready_workers == len(workers) and bool(workers)
        body: dict[str, Any] = {
            "ready": ready,
            "supervisor_pid": os.getpid(),  # who decided: `make run` checks it is its gateway
            "workers": {"ready": ready_workers, "running": len(workers)},
            "draining": stopping or any("draining" in r for r in reasons),
            "reasons": [
                reason + (f" [workers {', '.join(map(str, on))}]" if on else "")
                for reason, on in reasons.items()
            ],
        }
        for part, values in states.items():
            # The worst state any worker reports: anything but the good one outranks it.
            good = GOOD[part]
            worse = sorted({v for v in values if v != good})
            body[part] = worse[0] if worse else (good if values else "unknown")
        body.update(details)
        status = 200 if ready else 503
        _write_json(self.verdict, {"at": now, "status": status, "body": body})
        return status, body

    def read(self) -> Answer:
        """The supervisor's latest verdict; 503 when there is none or it is stale."""
        found = _read_json(self.verdict)
        if found is None:
            return 503, {"ready": False, "reasons": ["supervisor: no verdict yet"]}
        if time.time() - float(found.get("at", 0)) > STALE_SECONDS:
            return 503, {
                "ready": False,
                "reasons": ["supervisor: not answering (its verdict is stale)"],
            }
        return int(found.get("status", 503)), dict(found.get("body", {}))
