"""Where CPU work on a document runs: inline when it is small, in a thread when it is large.

Validating or verifying a 5 KB document takes well under a millisecond, less than handing it to
a thread; a 1 MB one takes tens of milliseconds, which must not stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def offload(size: int, threshold: int, work: Callable[[], T]) -> T:
    """Run ``work`` for a ``size``-byte document: inline up to ``threshold``, else in a thread."""
    if size <= threshold:
        return work()
    return await asyncio.to_thread(work)
