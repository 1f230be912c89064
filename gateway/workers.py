"""Several gateway processes on one machine, so validation and signing use every core.

The GIL lets one Python process use one core. ``run_workers`` starts ``node.workers`` child
processes; each one listens on the same port (SO_REUSEPORT, the kernel spreads connections)
and consumes every delivery queue (RabbitMQ spreads deliveries). A child that dies is started
again; SIGTERM or SIGINT stops them all gracefully.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import signal
import threading
import time
from pathlib import Path

import structlog

from gateway.app import serve
from gateway.logs import configure_logging
from gateway.settings import load_settings

log = structlog.get_logger("gateway.workers")

RESTART_PAUSE_SECONDS = 1.0


def _child(config: Path, index: int) -> None:
    # Runs in a fresh interpreter (spawn): load everything again, from the same files.
    settings = load_settings(config, os.environ)
    configure_logging(settings.log)
    structlog.contextvars.bind_contextvars(worker=index)
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
        process = context.Process(target=_child, args=(config, index), name=f"gateway-{index}")
        process.start()
        log.info("worker_started", worker=index, pid=process.pid)
        return process

    processes = {index: start(index) for index in range(count)}
    while not stopping.is_set():
        for index, process in list(processes.items()):
            if not process.is_alive() and not stopping.is_set():
                log.error("worker_died", worker=index, pid=process.pid, exitcode=process.exitcode)
                time.sleep(RESTART_PAUSE_SECONDS)
                processes[index] = start(index)
        stopping.wait(0.5)
    for process in processes.values():
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes.values():
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    log.info("workers_stopped")
    return 0
