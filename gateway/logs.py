"""Structured logging: JSON lines on stdout (readable console output on a terminal).

Every line carries the bound context (``correlation_id``, ``message_id`` ...). Payloads, keys
and passphrases are never logged; certificate fingerprints are.

Tracebacks are rendered without frame locals, whoever logs them (the gateway itself, aiohttp's
server and access loggers, asyncio): a local variable of a handler can hold an API key or a
document. structlog's stock ``dict_tracebacks`` shows locals, so it is not used.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from gateway.settings import LogSettings

# Frames with file, line and function, never their local variables.
TRACEBACKS = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))


def configure_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Configure structlog, and render the stdlib loggers' lines (aiohttp, aio-pika) alike."""
    stream = stream or sys.stdout
    use_console = settings.format == "console" or (
        settings.format == "auto" and hasattr(stream, "isatty") and stream.isatty()
    )
    renderer: Any = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if use_console
        else structlog.processors.JSONRenderer()
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
        processors=[*shared, *([] if use_console else [TRACEBACKS]), renderer],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if use_console else [TRACEBACKS]),
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
