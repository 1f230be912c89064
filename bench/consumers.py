"""The benchmarks' consumer: acks every message of one queue and says when enough came."""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue


class CountingConsumer:
    """Consumes one queue on a channel of its own, acking each message, until told to stop."""

    def __init__(self, queue: AbstractQueue, expected: int) -> None:
        self._queue = queue
        self._expected = expected
        self._count = 0
        self._done = asyncio.Event()
        self._tag: str | None = None

    @classmethod
    async def start(
        cls, connection: AbstractConnection, name: str, *, expected: int, prefetch: int
    ) -> CountingConsumer:
        """Start consuming the (declared) queue ``name``; ``wait`` returns after ``expected``."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        consumer = cls(await channel.get_queue(name), expected)
        consumer._tag = await consumer._queue.consume(consumer._on_message)
        return consumer

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self._count += 1
        if self._count >= self._expected:
            self._done.set()

    async def wait(self, timeout: float = 300) -> None:
        """Until ``expected`` messages were acked (``TimeoutError`` after ``timeout`` s)."""
        await asyncio.wait_for(self._done.wait(), timeout)

    async def stop(self) -> None:
        """Stop consuming, so that the queue can be deleted without a broker-side cancel."""
        if self._tag is not None:
            await self._queue.cancel(self._tag)
