"""Several gateway processes on one machine, so validation and signing use every core.

The GIL lets one Python process use one core. ``run_workers`` starts ``node.workers`` child
processes; each one listens on the same port (SO_REUSEPORT, the kernel spreads connections)
and consumes every delivery queue (RabbitMQ spreads deliveries). A child that dies is started
again; SIGTERM or SIGINT stops them all gracefully.

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
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from gateway import metrics
from gateway.app import drain_seconds, serve
from gateway.logs import configure_logging
from gateway.settings import NodeSettings, load_settings

log = structlog.get_logger("gateway.workers")

RESTART_PAUSE_SECONDS = 1.0
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


def _child(config: Path, index: int, workers: int) -> None:
    # Runs in a fresh interpreter (spawn): load everything again, from the same files.
    settings = load_settings(config, os.environ)
    configure_logging(settings.log)
    structlog.contextvars.bind_contextvars(worker=index)
    place_worker(settings.node, index, workers)
    asyncio.run(serve(settings, reuse_port=True))


def run_workers(config: Path, count: int) -> int:
    """Run ``count`` gateway processes until signalled; restart any that dies."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("workers_stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_child, args=(config, index, count), name=f"gateway-{index}"
        )
        process.start()
        log.info("worker_started", worker=index, pid=process.pid)
        return process

    metrics_dir = metrics.prepare_multiprocess_dir()  # before any worker starts
    processes = {index: start(index) for index in range(count)}
    drain = drain_seconds(load_settings(config, os.environ))
    while not stopping.is_set():
        for index, process in list(processes.items()):
            if not process.is_alive() and not stopping.is_set():
                log.error("worker_died", worker=index, pid=process.pid, exitcode=process.exitcode)
                metrics.worker_dead(process.pid)
                time.sleep(RESTART_PAUSE_SECONDS)
                processes[index] = start(index)
        stopping.wait(0.5)
    for process in processes.values():
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    # Each worker drains its hand-overs first (node.drain_seconds, by default the largest
    # adapter timeout and a margin); only one that outlasts that and its own stop is killed.
    for process in processes.values():
        process.join(timeout=STOP_GRACE_SECONDS + drain)
        if process.is_alive():
            process.kill()
    metrics.remove_multiprocess_dir(metrics_dir)
    log.info("workers_stopped")
    return 0
