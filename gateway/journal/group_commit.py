"""Group commit for the PostgreSQL journal: concurrent hot-path writes share one transaction.

Every write of the hot path (accept, claim, transition, link, inbox store) is one statement;
so are the reads that follow one (why a claim or a transition did not move) and a message's
view (``get``: summary, timeline and links in one statement), which ride along in the batches.
Run alone in autocommit each costs a round trip and a commit (a WAL flush) of its own; under
load that, not the statements, is what the journal spends its time on. Here callers queue their
statement and await its first row; a flusher takes whatever is queued (after a short window,
``window`` seconds, so that writes arriving together travel together), sends the whole batch
as one libpq pipeline (``gateway.journal.pipeline``) inside one transaction (``BEGIN``, the
statements, ``COMMIT``: one round trip, one flush) and hands each caller its own row. A caller
hears back only after the COMMIT returned, so a 202 still means the row is durable.

Several flushers (``flushers``) may be in flight at once on different connections, so one
batch is collected while the previous commits. Within a batch the statements run in message-id
order (stable, so two writes for one message keep their order): concurrent batches lock rows in
the same order and cannot deadlock on the ``messages`` rows.

Errors, per caller:

- the batch failed on a statement (a deadlock on the business-key index, a serialization
  failure, a constraint): PostgreSQL rolled all of it back, so nothing was written; each write
  is then run again alone, in autocommit as before group commit, and each caller gets its own
  row or its own error;
- the connection failed, the server is read-only, the disk is full, or the batch outlived the
  operation timeout: every caller in the batch gets the same translated error
  (``journal-unavailable``, ``journal-read-only``, ``journal-full``), as a single write would.
  As with a single write, a COMMIT whose answer was lost may have committed; a client's resend
  is recognised (``resubmitted``).

A caller that gives up (its operation timeout) before its write was taken into a batch is
never run.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger("gateway.journal.group_commit")

Row = tuple[Any, ...] | None


@dataclass(slots=True)
class Write:
    """One queued statement: its message id (lock order), SQL, parameters and its caller."""

    key: str
    text: str
    params: dict[str, Any]
    done: asyncio.Future[Row] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batch(Protocol):
    """What a flusher does with one batch; the journal supplies connections and error rules."""

    async def commit(self, writes: list[Write]) -> list[Row]:
        """Run ``writes`` in one transaction; raise if any failed (nothing is then written)."""

    async def alone(self, write: Write) -> Row:
        """Run one write in autocommit (after its batch failed on a statement)."""

    def rolled_back(self, exc: BaseException) -> bool:
        """True if ``exc`` means the batch's transaction was rolled back and the connection
        still answered: the writes may be run again one by one."""

    def translated(self, exc: BaseException) -> BaseException:
        """The gateway's error for a failure that every caller of the batch shares."""


class GroupCommit:
    """Queues hot-path writes and commits them in batches (see the module's docstring)."""

    def __init__(
        self,
        batch: Batch,
        *,
        window: float = 0.0005,
        flushers: int = 3,
        max_batch: int = 128,
    ) -> None:
        self._batch = batch
        self._window = window
        self._flushers = max(1, flushers)
        self._max_batch = max(1, max_batch)
        self._pending: collections.deque[Write] = collections.deque()
        self._running = 0
        self._collecting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Batches committed (for tests and the bench: writes per batch = ``writes/batches``)."""
        self.writes = 0
        self.splits = 0
        """Batches that failed on a statement and were run again one write at a time."""

    async def write(self, key: str, text: str, params: dict[str, Any]) -> Row:
        """Queue one statement and wait for its first row (None if it returned none).

        Returns only after the batch holding it committed. Cancelled (a timeout) while still
        queued, the write is never run.
        """
        write = Write(key=key, text=text, params=params)
        self._pending.append(write)
        self._wake()
        try:
            return await write.done
        except asyncio.CancelledError:
            write.done.cancel()
            raise

    def _wake(self) -> None:
        """Start a flusher unless one is already collecting or all are busy."""
        if self._collecting or self._running >= self._flushers or not self._pending:
            return
        self._running += 1
        self._collecting += 1
        task = asyncio.get_running_loop().create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        collecting = True  # counted in ``_collecting`` by ``_wake``
        try:
            while True:
                # Let writes arriving together join this batch.
                await asyncio.sleep(self._window)
                writes = self._take()
                self._collecting -= 1
                collecting = False
                if not writes:
                    return
                self._wake()  # more waiting than one batch takes, or arriving meanwhile
                await self._run(writes)
                self._collecting += 1
                collecting = True
        finally:
            if collecting:
                self._collecting -= 1
            self._running -= 1
            self._wake()

    def _take(self) -> list[Write]:
        writes: list[Write] = []
        while self._pending and len(writes) < self._max_batch:
            write = self._pending.popleft()
            if not write.done.done():  # its caller gave up before it was taken: never run
                writes.append(write)
        writes.sort(key=lambda w: w.key)  # stable: one message's writes keep their order
        return writes

    async def _run(self, writes: list[Write]) -> None:
        try:
            rows = await self._batch.commit(writes)
        except Exception as exc:  # noqa: BLE001  (each caller gets its own outcome below)
            if len(writes) > 1 and self._batch.rolled_back(exc):
                self.splits += 1
                log.info("journal_batch_split", writes=len(writes), reason=type(exc).__name__)
                await asyncio.gather(*(self._alone(w) for w in writes))
                return
            error = self._batch.translated(exc)
            for write in writes:
                if not write.done.done():
                    write.done.set_exception(error)
            return
        except asyncio.CancelledError:
            for write in writes:
                if not write.done.done():
                    write.done.cancel()
            raise
        self.batches += 1
        self.writes += len(writes)
        for write, row in zip(writes, rows, strict=True):
            if not write.done.done():
                write.done.set_result(row)

    async def _alone(self, write: Write) -> None:
        try:
            row = await self._batch.alone(write)
        except Exception as exc:  # noqa: BLE001  (handed to its own caller)
            if not write.done.done():
                write.done.set_exception(exc)
            return
        if not write.done.done():
            write.done.set_result(row)

    async def close(self, error: BaseException) -> None:
        """Fail whatever is still queued with ``error``; let the batches in flight finish."""
        while self._pending:
            write = self._pending.popleft()
            if not write.done.done():
                write.done.set_exception(error)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
