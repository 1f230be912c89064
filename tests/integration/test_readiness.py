"""/readyz tells the truth about the journal as well as the broker."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from gateway.app import MIN_DRAIN_SECONDS, Gateway, drain_seconds
from gateway.settings import NodeSettings, PartySettings, Settings


async def _readyz(gateway: Gateway) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{gateway.port}/readyz") as response,
    ):
        return response.status, await response.json()


async def test_ready_names_broker_and_journal(running_gateway: Gateway) -> None:
    """A gateway with its broker and a writable journal is ready and says so."""
    status, body = await _readyz(running_gateway)
    assert (status, body["ready"], body["broker"], body["journal"]) == (
        200,
        True,
        "connected",
        "ok",
    )


async def test_deleted_journal_makes_the_gateway_not_ready(
    running_gateway: Gateway, tmp_path: Path
) -> None:
    """A deleted SQLite journal file is 503 with the journal's state and reason, not 200."""
    (tmp_path / "journal.db").unlink()
    status, body = await _readyz(running_gateway)
    assert status == 503
    assert body["ready"] is False
    assert body["journal"] == "replaced"
    assert body["journal_reason"]


async def test_overflow_readyz_agrees_with_the_route(
    running_gateway: Gateway, tmp_path: Path
) -> None:
    """A connection beyond the limit gets the same /readyz answer as the route (journal too)."""
    guard = running_gateway.guard
    assert guard is not None
    (tmp_path / "journal.db").unlink()
    route_status, route_body = await _readyz(running_gateway)
    head, _, data = (await guard.health_response("/readyz")).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(route_status).encode() == b"503"
    assert json.loads(data) == route_body


async def test_a_draining_gateway_refuses_new_work_and_is_not_ready(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Once stopping, a new document gets 503 draining with Retry-After and /readyz says so."""
    assert running_gateway.submissions is not None
    running_gateway.submissions.drain()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{running_gateway.port}/v1/messages",
            data=sample_formd,
            headers={"Content-Type": "application/xml"},
        ) as response,
    ):
        problem = json.loads(await response.text())
        assert (response.status, problem["code"], problem["retryable"]) == (503, "draining", True)
        assert response.headers["Retry-After"]
    status, body = await _readyz(running_gateway)
    assert (status, body["ready"], body["draining"]) == (503, False, True)


def test_default_drain_covers_the_largest_adapter_timeout() -> None:
    """Without node.drain_seconds the drain is the largest HTTP adapter timeout plus 5 s."""
    push = PartySettings(
        country="TH", adapter="http-push", options={"url": "http://x", "timeout_seconds": "25"}
    )
    folder = PartySettings(country="SG", adapter="drop-folder", options={"directory": "/tmp"})
    assert drain_seconds(Settings(parties={"TH": push, "SG": folder})) == 30.0
    assert drain_seconds(Settings(parties={"SG": folder})) == MIN_DRAIN_SECONDS
    configured = Settings(node=NodeSettings(drain_seconds=7.5), parties={"TH": push})
    assert drain_seconds(configured) == 7.5
