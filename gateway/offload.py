"""Where CPU work on a document runs: inline when it is small, in a bounded pool when large.

Validating or verifying a small document costs less than handing it to a thread; a large one
costs far more, and must not stall the event loop (figures in ``docs/performance.md``).

Work for documents that callers submit over HTTP runs in the worker's ``RequestPool``: a few
threads and a bounded queue. When the queue is full the caller gets ``Busy`` (503 with
Retry-After) instead of one more job in line. Deliveries, receipts and folder intake do not use
that pool (they run in the event loop's default executor), so callers filling it cannot starve
deliveries. Which pool applies follows the task: the HTTP shell sets ``REQUEST_POOL`` for the
duration of a request (``using``); code elsewhere calls ``offload`` unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

from gateway.errors import Busy

T = TypeVar("T")


class RequestPool:
    """A fixed number of threads with at most ``queue`` jobs waiting for them."""

    def __init__(self, *, threads: int, queue: int, name: str = "asw-requests") -> None:
        self.threads = threads
        self.capacity = threads + queue
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.in_work = 0  # jobs running or waiting

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a pool thread; raise ``Busy`` when the pool is full."""
        if self.in_work >= self.capacity:
            raise Busy(
                "The gateway has as many documents in work as it allows; send this one again "
                "in a moment."
            )
        self.in_work += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self.in_work -= 1

    def close(self) -> None:
        """Stop the threads once the running jobs are done (does not wait)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


REQUEST_POOL: ContextVar[RequestPool | None] = ContextVar("asw_request_pool", default=None)


@contextlib.contextmanager
def using(pool: RequestPool) -> Iterator[None]:
    """Within the block (one request's task), heavy work goes to ``pool``."""
    token = REQUEST_POOL.set(pool)
    try:
        yield
    finally:
        REQUEST_POOL.reset(token)


async def offload(size: int, threshold: int, work: Callable[[], T]) -> T:
    """Run ``work`` for a ``size``-byte document: inline up to ``threshold``, else in a thread.

    Inside an HTTP request the thread is one of the request pool's (``Busy`` when full);
    elsewhere (deliveries, receipts, folder intake) one of the event loop's default executor.
    """
    if size <= threshold:
        return work()
    pool = REQUEST_POOL.get()
    if pool is None:
        return await asyncio.to_thread(work)
    return await pool.run(work)
