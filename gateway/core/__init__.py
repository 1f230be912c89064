"""The pure core: documents, rules, signatures, trust, routing decisions, message states.

Nothing here imports aiohttp, aio_pika or asyncio, reads the environment or the clock: callers
hand in bytes, settings slices, trust data and the current time.
"""
