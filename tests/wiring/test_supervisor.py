"""The supervisor logs a crashed background task with its error code and restarts it."""

from __future__ import annotations

import asyncio

import structlog

from gateway.errors import GatewayError, PeerUnavailable
from gateway.supervisor import Supervisor


async def test_crashed_task_is_logged_and_restarted() -> None:
    """A real task that raises twice is logged each time with its code and runs a third time."""
    runs: list[int] = []
    third_run = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise PeerUnavailable("the folder is gone")
        if len(runs) == 2:
            raise RuntimeError("boom")
        third_run.set()
        await asyncio.Event().wait()  # runs until cancelled

    supervisor = Supervisor(first_delay=0.01, max_delay=1.0)
    with structlog.testing.capture_logs() as logs:
        supervisor.start("flaky", flaky)
        await asyncio.wait_for(third_run.wait(), timeout=5)
        await supervisor.stop()
    crashes = [e for e in logs if e["event"] == "task_crashed"]
    assert [(e["task"], e["error"], e["error_type"]) for e in crashes] == [
        ("flaky", PeerUnavailable.code, "PeerUnavailable"),
        ("flaky", GatewayError.code, "RuntimeError"),
    ]
    assert [e["restart_in_seconds"] for e in crashes] == [0.01, 0.02]  # backoff doubles
    assert supervisor.restarts["flaky"] == 2
    assert len(runs) == 3


async def test_stop_cancels_every_task() -> None:
    """After stop, no supervised task is left running and a name may be used again."""
    supervisor = Supervisor()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    supervisor.start("a", forever)
    await asyncio.wait_for(started.wait(), timeout=5)
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "a"]
    await supervisor.stop()
    assert tasks and all(t.done() for t in tasks)
    assert supervisor.names == []
    supervisor.start("a", forever)
    await supervisor.stop()
