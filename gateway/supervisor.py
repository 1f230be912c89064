"""One small supervisor for the gateway's background tasks (intakes, sweeps, trust reloads).

A supervised task that crashes is logged (``task_crashed``, with its error code) and started
again after a delay that doubles with each crash in a row (``first_delay`` up to ``max_delay``);
a run that lasted longer than ``max_delay`` counts as healthy and resets the delay. A task that
returns is started again too (background tasks are meant to run until stopped). ``stop``
cancels them all and waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from gateway.errors import GatewayError

log = structlog.get_logger("gateway.supervisor")

TaskFactory = Callable[[], Awaitable[None]]


class Supervisor:
    """Runs named background tasks and restarts each one that crashes, with backoff."""

    def __init__(self, *, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.restarts: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` under supervision as the task ``name`` (unique)."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self.restarts[name] = 0
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    @property
    def names(self) -> list[str]:
        """The supervised tasks' names."""
        return sorted(self._tasks)

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        loop = asyncio.get_running_loop()
        crashes = 0
        while True:
            started = loop.time()
            try:
                await factory()
            except Exception as exc:  # noqa: BLE001 - supervised: logged, then restarted
                if loop.time() - started > self.max_delay:
                    crashes = 0
                crashes += 1
                delay = min(self.first_delay * 2 ** (crashes - 1), self.max_delay)
                log.error(  # noqa: TRY400 - no traceback with frame locals in the logs
                    "task_crashed",
                    task=name,
                    error=exc.code if isinstance(exc, GatewayError) else GatewayError.code,
                    error_type=type(exc).__name__,
                    detail=str(exc)[:300],
                    restart_in_seconds=delay,
                )
            else:
                crashes, delay = 0, self.first_delay
                log.warning("task_ended", task=name, restart_in_seconds=delay)
            await asyncio.sleep(delay)
            self.restarts[name] += 1
            log.info("task_restarted", task=name, restarts=self.restarts[name])

    async def stop(self) -> None:
        """Cancel every supervised task and wait until they have ended."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
