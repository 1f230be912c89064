"""Several gateway processes share the port and the queues; a dead one is replaced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog
import structlog.testing

from asw_toolkit.processes import GatewayProcess
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import NodeSettings
from gateway.workers import cpu_for_worker, place_worker
from tests.conftest import delete_topology, with_message_id
from tests.pki_fixtures import PkiBundle

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(name="two_workers")
def _two_workers(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        workdir=tmp_path, amqp_url=amqp_url, pki_dir=rsa_pki.directory, workers=2
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
        asyncio.run(delete_topology(amqp_url, Topology(gateway.prefix), MEMBER_STATES, (500, 1000)))


async def _submit_many(gateway: GatewayProcess, document: bytes, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with aiohttp.ClientSession() as session:

        async def one(message_id: str) -> int:
            async with session.post(
                gateway.url + "/v1/messages",
                data=with_message_id(document, message_id),
                headers={"Content-Type": "application/xml"},
            ) as response:
                return response.status

        statuses = await asyncio.gather(*(one(i) for i in ids))
    assert set(statuses) == {202}, statuses
    return ids


def _wait_delivered(gateway: GatewayProcess, ids: list[str], timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    missing = set(ids)
    while missing and time.monotonic() < deadline:
        missing = {i for i in missing if not (gateway.inbox("TH") / f"{i}.xml").exists()}
        time.sleep(0.1)
    return missing


async def test_two_workers_accept_and_deliver(
    two_workers: GatewayProcess, sample_formd: bytes
) -> None:
    """Two worker processes run; 50 submissions are all accepted and delivered."""
    assert len(two_workers.children()) == 2, two_workers.log_tail()
    ids = await _submit_many(two_workers, sample_formd, 50)
    assert _wait_delivered(two_workers, ids) == set()
    _assert_one_outcome_line_each(two_workers.workdir / "gateway.log", ids)


def _assert_one_outcome_line_each(log: Path, ids: list[str]) -> None:
    """Every log line is JSON; each message has one accepted and one delivered line, with
    its context, and no line carries document content or key material."""
    deadline = time.monotonic() + 10  # the delivered line follows the file and the ack
    while True:
        text = log.read_text()
        # Receipts are delivered too: wait for the line of each submitted message.
        delivered = {
            line.split('"message_id": "', 1)[1][:36]
            for line in text.splitlines()
            if '"message_delivered"' in line and '"message_id": "' in line
        }
        if delivered >= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for message_id in ids:
        mine = [line for line in lines if line.get("message_id") == message_id]
        events = sorted(line["event"] for line in mine)
        assert events == ["message_accepted", "message_delivered"], (message_id, events)
        for line in mine:
            assert {"timestamp", "level", "outcome", "sender", "recipient"} <= line.keys()
    for secret in ("Lion City Precision", "SG26-CO-0012345", "PRIVATE KEY", "MII"):
        assert secret not in text, secret


async def test_a_killed_worker_is_replaced(
    two_workers: GatewayProcess, sample_formd: bytes
) -> None:
    """After kill -9 of one worker the supervisor starts another and delivery goes on."""
    before = two_workers.children()
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = two_workers.children()
        if len(now) == 2 and before[0] not in now:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"worker not replaced:\n{two_workers.log_tail()}")
    two_workers.wait_ready(30)
    ids = await _submit_many(two_workers, sample_formd, 20)
    assert _wait_delivered(two_workers, ids) == set()
    assert "worker_died" in (two_workers.workdir / "gateway.log").read_text()


def test_auto_pins_one_worker_per_cpu_only() -> None:
    """auto pins when workers equal CPUs, in the CPUs' own order; otherwise it leaves them."""
    assert [cpu_for_worker(i, 2, [5, 2], "auto") for i in range(2)] == [2, 5]
    assert cpu_for_worker(0, 3, [0, 1], "auto") is None  # more workers than CPUs
    assert cpu_for_worker(0, 2, [0, 1, 2, 3], "auto") is None  # CPUs left idle
    assert cpu_for_worker(0, 1, [0], "auto") is None  # one process: nothing to spread


def test_on_deals_workers_over_cpus_and_off_never_pins() -> None:
    """on deals any number of workers out over the CPUs in turn; off never pins."""
    assert [cpu_for_worker(i, 3, [0, 1], "on") for i in range(3)] == [0, 1, 0]
    assert cpu_for_worker(0, 2, [0, 1], "off") is None


def test_running_workers_have_the_affinity_the_setting_asks(two_workers: GatewayProcess) -> None:
    """The two running workers are pinned as cpu_for_worker says for this machine's CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    expected = sorted(
        (cpu,) if (cpu := cpu_for_worker(i, 2, cpus, "auto")) is not None else tuple(cpus)
        for i in range(2)
    )
    deadline = time.monotonic() + 10  # each worker pins itself as it starts
    while True:
        actual = sorted(tuple(sorted(os.sched_getaffinity(p))) for p in two_workers.children())
        if actual == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert actual == expected


def test_running_workers_use_the_batch_scheduling_policy(two_workers: GatewayProcess) -> None:
    """The workers, and their threads, run under SCHED_BATCH (node.scheduler's default)."""
    deadline = time.monotonic() + 10
    while True:
        threads = [
            int(tid) for pid in two_workers.children() for tid in os.listdir(f"/proc/{pid}/task")
        ]
        policies = {p for p in (_policy(tid) for tid in threads) if p is not None}
        if policies == {os.SCHED_BATCH} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(threads) > 2  # the event loop threads and at least the journal's
    assert policies == {os.SCHED_BATCH}


def _policy(tid: int) -> int | None:
    """A thread's scheduling policy, or None if it ended between listing and asking."""
    try:
        return os.sched_getscheduler(tid)
    except ProcessLookupError:
        return None


def test_a_refused_placement_is_logged_and_the_worker_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the system refuses pinning (a restricted container), the worker logs it and runs."""

    def refuse(_pid: int, _cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    policy = os.sched_getscheduler(0)
    with structlog.testing.capture_logs() as logs:
        place_worker(NodeSettings(pin_cpus="on", scheduler="batch"), 0, 2)
    assert [entry["event"] for entry in logs] == ["worker_not_placed"]
    assert logs[0]["error"] == "Operation not permitted"
    assert os.sched_getscheduler(0) == policy  # nothing half-applied to this process


def test_a_node_given_one_cpu_keeps_every_thread_on_it(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> None:
    """A one-worker node started on one CPU (two nodes sharing a machine, a cpuset each) runs
    every thread there: the node does not widen or move the CPUs it was given."""
    cpu = max(os.sched_getaffinity(0))
    gateway = GatewayProcess(
        workdir=tmp_path, amqp_url=amqp_url, pki_dir=rsa_pki.directory, cpus=(cpu,)
    )
    gateway.start()
    try:
        assert gateway.process is not None
        threads = [int(tid) for tid in os.listdir(f"/proc/{gateway.process.pid}/task")]
        affinities = {a for a in (_affinity(tid) for tid in threads) if a is not None}
        assert len(threads) > 1  # the event loop thread and at least the journal's
        assert affinities == {frozenset({cpu})}
    finally:
        gateway.stop()
        asyncio.run(delete_topology(amqp_url, Topology(gateway.prefix), MEMBER_STATES, (500, 1000)))


def _affinity(tid: int) -> frozenset[int] | None:
    """A thread's CPUs, or None if it ended between listing and asking."""
    try:
        return frozenset(os.sched_getaffinity(tid))
    except ProcessLookupError:
        return None
