"""Problem details (RFC 9457): the one renderer of a ``GatewayError`` as an HTTP answer.

Every refusal the gateway answers, from a handler, the authentication middleware or the
connection guard (which writes raw bytes to a connection aiohttp never sees), goes through
here, so the body, the media type and ``Retry-After`` agree everywhere.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import Busy, GatewayError, TemporaryFailure

PROBLEM_JSON = "application/problem+json"
BUSY_RETRY_AFTER = "1"
TEMPORARY_RETRY_AFTER = "5"


def problem_document(
    error: GatewayError, *, base_uri: str, instance: str | None = None
) -> dict[str, Any]:
    """The problem details object of ``error``."""
    return error.to_problem(base_uri=base_uri, instance=instance)


def retry_after(error: GatewayError) -> str | None:
    """The ``Retry-After`` seconds for a temporary failure, None for any other error."""
    if isinstance(error, Busy):
        return BUSY_RETRY_AFTER
    if isinstance(error, TemporaryFailure):
        return TEMPORARY_RETRY_AFTER
    return None


def problem_response(
    error: GatewayError, *, base_uri: str, instance: str | None = None
) -> web.Response:
    """Render ``error`` as an aiohttp problem details response."""
    response = web.json_response(
        problem_document(error, base_uri=base_uri, instance=instance),
        status=error.http_status,
        content_type=PROBLEM_JSON,
    )
    wait = retry_after(error)
    if wait is not None:
        response.headers["Retry-After"] = wait
    return response
