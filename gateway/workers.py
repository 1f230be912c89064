"""Several gateway processes on one machine, so validation and signing use every core.

The GIL lets one Python process use one core. ``run_workers`` starts ``node.workers`` child
processes; each one listens on the same port (SO_REUSEPORT, the kernel spreads connections)
and consumes every delivery queue (RabbitMQ spreads deliveries). A child that dies is started
again; SIGTERM or SIGINT stops them all gracefully.

The supervisor binds the port first and keeps it (``gateway.startup.hold_port``): a port
another program holds stops start-up with a message naming it, and a second gateway started
on the same port finds it taken instead of sharing it. It also decides readiness for all its
workers (``gateway.readiness``), so ``/readyz`` gives the same answer whichever worker takes it.

With as many workers as CPUs (``node.pin_cpus = "auto"``, or always with ``"on"``), each
worker is pinned to its own CPU. The kernel otherwise moves the busy workers between cores,
and each move costs them their warm caches (measured with ``bench/bench_e2e.py``; the figures
are in ``docs/performance.md``). RabbitMQ and anything else on the machine still run on every
CPU.

The gateway processes run under Linux's batch scheduling policy (``node.scheduler``). A
worker's helper threads (the journal's, the drop folders' writes) wake many times per message;
under the normal policy each wake-up preempted the event loop thread, which then held the GIL
the woken thread needed. Batch lets the loop run on until it waits: more deliveries per second
for less worker CPU, with tail latency unchanged (figures in ``docs/performance.md``).

Where the system forbids either (a restricted container), the worker says so in its log and
runs as the kernel places it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from gateway import metrics
from gateway.app import drain_seconds, serve
from gateway.logs import configure_logging
from gateway.readiness import REPORT_SECONDS, ReadinessBoard, run_dir
from gateway.settings import NodeSettings, Settings, load_settings
from gateway.startup import StartupRefused, hold_port, startup_message

log = structlog.get_logger("gateway.workers")

RESTART_PAUSE_SECONDS = 1.0
START_FAILURES = 3
"""Deaths in a row, each before the worker ever reported, after which the supervisor gives up."""
STOP_GRACE_SECONDS = 20.0
"""What a worker may take to stop beyond draining its hand-overs (HTTP, broker, journal)."""


def cpu_for_worker(index: int, workers: int, cpus: Sequence[int], mode: str) -> int | None:
    """The CPU worker ``index`` of ``workers`` is pinned to, or None to leave it to the kernel.

    ``cpus`` are the CPUs this gateway may run on. ``auto`` pins only when there is exactly one
    worker per CPU (more workers than CPUs would crowd some, fewer would idle others); ``on``
    deals the workers out over the CPUs in turn; ``off`` never pins.
    """
    if mode == "off" or not cpus or workers < 2:
        return None
    if mode == "auto" and workers != len(cpus):
        return None
    return sorted(cpus)[index % len(cpus)]


def place_worker(node: NodeSettings, index: int, workers: int) -> None:
    """Apply ``node.pin_cpus`` and ``node.scheduler`` to this process, before it starts threads.

    Both are per thread in Linux; threads started afterwards inherit them.
    """
    cpu = cpu_for_worker(index, workers, sorted(os.sched_getaffinity(0)), node.pin_cpus)
    scheduler = node.scheduler
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if scheduler == "batch":
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:  # a container's seccomp or cpuset may refuse; run unplaced
        log.warning("worker_not_placed", cpu=cpu, scheduler=scheduler, error=exc.strerror)
        return
    log.info("worker_placed", cpu=cpu, scheduler=scheduler)


def _child(config: Path, index: int, workers: int, run_dir: Path) -> None:
    # Runs in a fresh interpreter (spawn): load everything again, from the same files.
    settings = load_settings(config, os.environ)
    configure_logging(settings.log)
    structlog.contextvars.bind_contextvars(worker=index)
    place_worker(settings.node, index, workers)
    board = ReadinessBoard(run_dir)
    asyncio.run(
        serve(
            settings,
            reuse_port=True,
            housekeeping=index == 0,
            board=board,
            report=board.report(index),
        )
    )


class _Supervisor:
    """The workers of one gateway: started, watched, restarted, judged ready, stopped."""

    def __init__(self, config: Path, count: int, run_dir: Path, drain: float) -> None:
        self.config = config
        self.drain = drain
        self.count = count
        self.run_dir = run_dir
        self.board = ReadinessBoard(run_dir)
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self.reported: set[int | None] = set()  # pids of workers that reported at least once
        self.failures = dict.fromkeys(range(count), 0)
        self.was_ready: bool | None = None
        self.exit_status = 0

    def start(self, index: int) -> None:
        process = self.context.Process(
            target=_child,
            args=(self.config, index, self.count, self.run_dir),
            name=f"gateway-{index}",
        )
        process.start()
        log.info("worker_started", worker=index, pid=process.pid)
        self.processes[index] = process

    def check(self, index: int, process: multiprocessing.process.BaseProcess) -> None:
        """Restart a dead worker, or give up on one that never got as far as reporting."""
        if self.board.reported(index, process.pid):
            self.reported.add(process.pid)
        if process.is_alive() or self.stopping.is_set():
            return
        log.error("worker_died", worker=index, pid=process.pid, exitcode=process.exitcode)
        metrics.worker_dead(process.pid)
        self.failures[index] = 0 if process.pid in self.reported else self.failures[index] + 1
        if self.failures[index] >= START_FAILURES:
            print(
                f"asw-gateway: worker {index} failed {self.failures[index]} times in a row "
                f"before it was ready (last exit status {process.exitcode}); not starting it "
                "again. Its log above says why.",
                file=sys.stderr,
            )
            log.error("workers_giving_up", worker=index, failures=self.failures[index])
            self.exit_status = 1
            self.stopping.set()
            return
        time.sleep(RESTART_PAUSE_SECONDS)
        self.start(index)

    def judge(self) -> None:
        """Write the readiness verdict; log when it changes."""
        status, body = self.board.aggregate(
            {index: p.pid for index, p in self.processes.items()},
            stopping=self.stopping.is_set(),
        )
        if (status == 200) != self.was_ready:
            self.was_ready = status == 200
            if self.was_ready:
                log.info("gateway_ready", workers=self.count)
            else:
                log.warning("gateway_not_ready", reasons=body["reasons"])

    def run(self) -> int:
        for index in range(self.count):
            self.start(index)
        while not self.stopping.is_set():
            for index, process in list(self.processes.items()):
                self.check(index, process)
            self.judge()
            self.stopping.wait(REPORT_SECONDS)
        self.judge()  # draining, at once
        for process in self.processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        # Each worker drains its hand-overs first (node.drain_seconds, by default the largest
        # adapter timeout and a margin); only one that outlasts that is killed. Meanwhile the
        # verdict stays fresh (draining), for the workers still answering /readyz.
        deadline = time.monotonic() + STOP_GRACE_SECONDS + self.drain
        for process in self.processes.values():
            while process.is_alive() and time.monotonic() < deadline:
                process.join(timeout=REPORT_SECONDS)
                self.judge()
            if process.is_alive():
                process.kill()
        return self.exit_status


def run_workers(config: Path, count: int, settings: Settings | None = None) -> int:
    """Run ``count`` gateway processes until signalled; restart any that dies.

    The caller has run the start-up checks (``gateway.startup.preflight``). The supervisor
    holds the port (``hold_port``) for as long as it runs, writes the readiness verdict every
    worker answers (``gateway.readiness``), and gives up, exit status 1, when a worker dies
    ``START_FAILURES`` times in a row before it ever reported: that is a start-up fault a
    restart will not mend, and restarting it for ever would only hide it.
    """
    settings = settings or load_settings(config, os.environ)
    http = settings.http
    try:
        held = hold_port(http.host, http.port) if http.port else None
    except StartupRefused as exc:
        print(startup_message(exc.problems), file=sys.stderr)
        return 2
    supervisor = _Supervisor(config, count, run_dir(), drain_seconds(settings))

    def request_stop(signum: int, _frame: object) -> None:
        log.info("workers_stopping", signal=signal.Signals(signum).name)
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    metrics_dir = metrics.prepare_multiprocess_dir()  # before any worker starts
    try:
        return supervisor.run()
    finally:
        metrics.remove_multiprocess_dir(metrics_dir)
        shutil.rmtree(supervisor.run_dir, ignore_errors=True)
        if held is not None:
            held.close()
        log.info("workers_stopped")
