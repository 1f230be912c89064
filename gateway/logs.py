"""Structured logging: JSON lines on stdout (readable console output on a terminal).

Every line carries the bound context (``correlation_id``, ``message_id`` ...). Payloads, keys
and passphrases are never logged; certificate fingerprints are.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from gateway.settings import LogSettings


def configure_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Configure structlog, and render the stdlib loggers' lines (aiohttp, aio-pika) alike."""
    stream = stream or sys.stdout
    use_console = settings.format == "console" or (
        settings.format == "auto" and hasattr(stream, "isatty") and stream.isatty()
    )
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    # The gateway's own lines are rendered and written by structlog directly, in about half the
    # time of the stdlib logging machinery (bench/bench_parts.py: one outcome line).
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks, renderer],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiormq logs every reconnect attempt at warning with a traceback; our own line says it.
    logging.getLogger("aiormq").setLevel(logging.ERROR)
    logging.getLogger("aio_pika").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
