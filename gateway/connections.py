"""Connections: how many a worker holds, what happens beyond that, and the open-file limit.

aiohttp closes a connection that has not sent a complete request within its keep-alive
timeout (also armed when the connection opens), which the gateway sets to
``http.header_timeout_seconds``: a silent or slow-header connection is closed after that.

``ConnectionGuard`` is the protocol factory the listening socket uses. Up to
``http.max_connections`` connections are served by aiohttp as usual. Beyond that, a new
connection gets a small protocol that reads only the request line (for at most
``OVERFLOW_READ_SECONDS``): ``GET /healthz`` and ``/readyz`` are answered, anything else gets
``503 busy`` with Retry-After, and the connection is closed. So a flood of idle connections
never stops the health check, and never reaches the open-file limit (which ``raise_open_file_limit``
lifts to the hard limit at start). Past ``OVERFLOW_FACTOR`` times the limit, a connection is
answered 503 at once without reading anything.
"""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gateway.errors import Busy
from gateway.problems import BUSY_RETRY_AFTER, PROBLEM_JSON, problem_document, retry_after

log = structlog.get_logger("gateway.connections")

OVERFLOW_READ_SECONDS = 2.0
OVERFLOW_FACTOR = 4
MAX_REQUEST_LINE = 8192

# (status, JSON body) for a health path, from the gateway's own state (the routes' answer).
HealthAnswer = Callable[[str], Awaitable[tuple[int, dict[str, Any]]]]


def raise_open_file_limit() -> int:
    """Lift this process's soft limit on open files to the hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a container may forbid it; say so and go on
            log.warning("open_file_limit_unchanged", soft=soft, hard=hard, error=str(exc))
            return soft
        return hard
    return soft


def _response(
    status: int,
    reason: str,
    body: dict[str, Any],
    content_type: str,
    retry_after_seconds: str | None = None,
) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Connection: close\r\n"
    )
    if retry_after_seconds is not None:
        head += f"Retry-After: {retry_after_seconds}\r\n"
    return head.encode() + b"\r\n" + data


class ConnectionGuard:
    """The listening socket's protocol factory: aiohttp up to the limit, a short answer beyond."""

    def __init__(
        self,
        server: Callable[[], asyncio.BaseProtocol],
        *,
        connections: Callable[[], int],
        max_connections: int,
        health: HealthAnswer,
        problem_base_uri: str,
    ) -> None:
        self._server = server
        self._connections = connections
        self.max_connections = max_connections
        self._health = health
        busy = Busy("This gateway worker has as many connections open as it allows.")
        self._busy = _response(
            busy.http_status,
            "Service Unavailable",
            problem_document(busy, base_uri=problem_base_uri),
            PROBLEM_JSON,
            retry_after(busy),
        )
        self.overflowing: set[_Overflow] = set()
        self.refused = 0

    def __call__(self) -> asyncio.BaseProtocol:
        if self._connections() < self.max_connections:
            return self._server()
        return _Overflow(self)

    async def health_response(self, path: str) -> bytes:
        """The full HTTP answer to a health check made on an overflow connection."""
        status, body = await self._health(path)
        reason = "OK" if status == 200 else "Service Unavailable"
        wait = BUSY_RETRY_AFTER if status == 503 else None
        return _response(status, reason, body, "application/json", wait)

    def close(self) -> None:
        """Close every overflow connection (at shutdown)."""
        for protocol in list(self.overflowing):
            protocol.close()


class _Overflow(asyncio.Protocol):
    """A connection beyond the limit: answer a health check or 503, then close."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._health: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream server's transport
        guard = self._guard
        guard.refused += 1
        if guard.refused == 1 or guard.refused % 1000 == 0:
            log.warning(
                "connections_full", limit=guard.max_connections, refused_so_far=guard.refused
            )
        if len(guard.overflowing) >= guard.max_connections * OVERFLOW_FACTOR:
            self._answer(guard._busy)
            return
        guard.overflowing.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(OVERFLOW_READ_SECONDS, self._answer, guard._busy)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        line, found, _ = self._buffer.partition(b"\r\n")
        if not found:
            if len(self._buffer) > MAX_REQUEST_LINE:
                self._answer(self._guard._busy)
            return
        parts = line.split(b" ")
        if len(parts) == 3 and parts[0] in (b"GET", b"HEAD"):
            path = parts[1].split(b"?", 1)[0]
            if path in (b"/healthz", b"/readyz"):
                if self._health is None:
                    self._health = asyncio.ensure_future(self._answer_health(path.decode()))
                return
        self._answer(self._guard._busy)

    async def _answer_health(self, path: str) -> None:
        self._answer(await self._guard.health_response(path))

    def _answer(self, response: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(response)
        self.close()

    def close(self) -> None:
        """Stop waiting and close the connection once the answer is written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        health = self._health
        if health is not None and not health.done() and health is not asyncio.current_task():
            health.cancel()
        if self._transport is not None:
            self._transport.close()
        self._guard.overflowing.discard(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        self._transport = None
