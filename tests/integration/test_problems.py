"""The one problem-details renderer: body, media type and Retry-After agree for every error."""

from __future__ import annotations

import json

import pytest

from gateway.errors import BrokerUnavailable, Busy, GatewayError, RejectedMessage, Unauthenticated
from gateway.problems import PROBLEM_JSON, problem_response

BASE = "https://problems.example/"


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (Busy("full"), "1"),
        (BrokerUnavailable("down"), "5"),
        (RejectedMessage("bad"), None),
        (Unauthenticated("who"), None),
    ],
)
def test_problem_response_carries_the_error_document_and_retry_after(
    error: GatewayError, retry_after: str | None
) -> None:
    """Each error renders as its own problem document, with Retry-After only when temporary."""
    response = problem_response(error, base_uri=BASE, instance="/v1/x")
    assert response.status == error.http_status
    assert response.content_type == PROBLEM_JSON
    assert response.headers.get("Retry-After") == retry_after
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body == error.to_problem(base_uri=BASE, instance="/v1/x")
    assert body["type"] == f"{BASE}{error.code}"
