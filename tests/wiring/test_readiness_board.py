"""The supervisor's verdict over its workers' reports, and the port it holds for them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from asw_toolkit.processes import free_port
from gateway.readiness import ReadinessBoard, worker_readiness
from gateway.startup import StartupRefused, hold_port, port_problem

READY = worker_readiness(
    broker="connected", journal="ok", journal_reason=None, trust_problems=(), draining=False
)


def test_draining_and_silent_workers_are_not_ready(tmp_path: Path) -> None:
    """A draining worker, a stopping supervisor or a worker that never reported each make the
    gateway not ready, with that reason and the workers it concerns."""
    board = ReadinessBoard(tmp_path)
    me = os.getpid()
    board.report(0).write(READY)
    board.report(1).write(
        worker_readiness(
            broker="connected", journal="ok", journal_reason=None, trust_problems=(), draining=True
        )
    )
    status, body = board.aggregate({0: me, 1: me}, stopping=False)
    assert (status, body["draining"]) == (503, True)
    assert body["reasons"] == ["draining: the gateway is stopping [workers 1]"]
    board.report(1).write(READY)
    assert board.aggregate({0: me, 1: me}, stopping=False)[0] == 200
    assert board.read()[0] == 200
    status, body = board.aggregate({0: me, 1: me, 2: me + 1}, stopping=False)
    assert status == 503
    assert body["reasons"] == ["worker: starting or not reporting [workers 2]"]
    status, body = board.aggregate({0: me, 1: me}, stopping=True)
    assert (status, body["reasons"]) == (503, ["draining: the gateway is stopping"])


def test_worst_state_and_reasons_of_all_workers(tmp_path: Path) -> None:
    """The verdict carries the worst state of each part and each reason once, with its workers;
    a failed trust reload is named without making the gateway unready."""
    board = ReadinessBoard(tmp_path)
    me = os.getpid()
    board.report(0).write(
        worker_readiness(
            broker="disconnected",
            journal="read-only",
            journal_reason="standby",
            trust_problems=("TH/crl.pem: not a CRL",),
            draining=False,
        )
    )
    board.report(1).write(
        worker_readiness(
            broker="disconnected",
            journal="ok",
            journal_reason=None,
            trust_problems=(),
            draining=False,
        )
    )
    status, body = board.aggregate({0: me, 1: me}, stopping=False)
    assert status == 503
    assert body["reasons"] == [
        "broker: disconnected [workers 0, 1]",
        "journal: read-only (standby) [workers 0]",
    ]
    assert (body["broker"], body["journal"], body["trust"]) == (
        "disconnected",
        "read-only",
        "reload-failed",
    )
    assert body["trust_reason"] == "TH/crl.pem: not a CRL"
    assert board.read() == (status, body)


def test_a_stale_verdict_is_not_ready(tmp_path: Path) -> None:
    """Without a fresh verdict (the supervisor stuck or gone) every worker answers 503."""
    board = ReadinessBoard(tmp_path)
    assert board.read()[0] == 503
    board.report(0).write(READY)
    board.aggregate({0: os.getpid()}, stopping=False)
    verdict = board.verdict
    os.utime(verdict, (0, 0))  # the file's time is not what counts: its own "at" is
    assert board.read()[0] == 200
    verdict.write_text(verdict.read_text().replace('"at": ', '"at": 1, "old_at": '))
    status, body = board.read()
    assert status == 503
    assert body["reasons"] == ["supervisor: not answering (its verdict is stale)"]


def test_a_held_port_refuses_a_second_gateway_but_admits_its_workers() -> None:
    """The supervisor's held port: its workers join with SO_REUSEPORT, another gateway's
    check finds it taken and names this process."""
    port = free_port()
    held = hold_port("127.0.0.1", port)
    try:
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen()
        try:
            problem = port_problem("127.0.0.1", port)
            assert problem is not None
            assert f"127.0.0.1:{port} is already in use by" in problem
            assert f"(pid {os.getpid()})" in problem
            with pytest.raises(StartupRefused):
                hold_port("127.0.0.1", port)
        finally:
            worker.close()
    finally:
        held.close()
    assert port_problem("127.0.0.1", port) is None
