"""Shared timing for the benchmarks: calibrated loops, median of several runs.

Every benchmark prints its figure beside a baseline measured in the same run, because this
2-core machine is noisy (limits.md: +-10-20 % between runs); ratios survive the noise.
"""

from __future__ import annotations

import os
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


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by one process (0 if it is gone)."""
    return _process_ticks(pid) / _TICK


def _process_ticks(pid: int) -> int:
    """User plus system clock ticks used so far by one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def _pids_named(name: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="ascii") as comm:
                    if comm.read().strip() == name:
                        found.add(int(entry))
            except OSError:
                continue
    return found


def _machine_busy_ticks() -> int:
    """Busy clock ticks of the whole machine: all CPU time except idle and iowait."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4] - sum(fields[7:])  # minus steal, guest


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds spent between two readings: by a process tree, by RabbitMQ, by everything."""

    tree: float
    rabbitmq: float
    machine: float
    wall: float


class CpuMeter:
    """Reads CPU time used by a process tree, by RabbitMQ (beam.smp) and by the machine.

    CPU seconds per message separate work saved from a machine kept busier; they drift between
    runs too, so compare alternating runs, as with throughput.
    """

    def __init__(self, root: int | None) -> None:
        self._root = root
        self._start: tuple[int, int, int, float] = (0, 0, 0, 0.0)
        self._pids: set[int] = set()

    def _read(self) -> tuple[int, int, int, float]:
        if self._root is not None:
            self._pids |= _descendants(self._root)
        tree = sum(_process_ticks(pid) for pid in self._pids)
        rabbit = sum(_process_ticks(pid) for pid in _pids_named("beam.smp"))
        return tree, rabbit, _machine_busy_ticks(), time.perf_counter()

    def start(self) -> None:
        """Take the first reading."""
        self._start = self._read()

    def stop(self) -> CpuUse:
        """CPU seconds used since :meth:`start`."""
        end = self._read()
        tree, rabbit, machine, wall = (b - a for a, b in zip(self._start, end, strict=True))
        return CpuUse(tree / _TICK, rabbit / _TICK, machine / _TICK, wall)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CpuBreakdown:
    """CPU seconds, process by process, between two readings: each gateway process by name,
    the PostgreSQL backends serving one database, RabbitMQ, this (client) process, the machine.

    Where the CPU of one scenario goes that another does not spend: a supervisor, a second
    node's housekeeping, more or fewer journal backends. Processes that appear between the
    readings count from zero; one that ends before the second reading is not counted.
    """

    def __init__(self, roots: dict[str, int], database: str | None) -> None:
        self._roots = roots
        self._database = database
        self._start: dict[str, int] = {}
        self._machine = 0
        self._wall = 0.0

    def _processes(self) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {}
        for name, root in self._roots.items():
            groups[f"{name} main"] = {root}
            children = sorted(_descendants(root) - {root})
            spawned = [pid for pid in children if "resource_tracker" not in _cmdline(pid)]
            for index, pid in enumerate(spawned):
                groups[f"{name} child {index}"] = {pid}
        if self._database:
            marker = f" {self._database} "
            groups["PostgreSQL backends"] = {
                pid for pid in _pids_named("postgres") if marker in _cmdline(pid)
            }
        groups["RabbitMQ"] = _pids_named("beam.smp")
        groups["client"] = {os.getpid()}
        return groups

    def _read(self) -> dict[str, int]:
        return {
            f"{name}\t{pid}": _process_ticks(pid)
            for name, pids in self._processes().items()
            for pid in pids
        }

    def start(self) -> None:
        """Take the first reading."""
        self._start = self._read()
        self._machine = _machine_busy_ticks()
        self._wall = time.perf_counter()

    def stop(self) -> tuple[dict[str, float], float, float]:
        """CPU seconds per group since :meth:`start`, the machine's busy CPU seconds, the wall
        seconds."""
        end = self._read()
        used: dict[str, float] = {}
        for key, ticks in end.items():
            name = key.split("\t", 1)[0]
            used[name] = used.get(name, 0.0) + (ticks - self._start.get(key, 0)) / _TICK
        machine = (_machine_busy_ticks() - self._machine) / _TICK
        return used, machine, time.perf_counter() - self._wall
