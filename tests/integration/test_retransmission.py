"""Re-transmission of an e-Form D (OCP Rule 29(3)) end to end: a real gateway, RabbitMQ and
simulated NSWs (real HTTP servers) for the receiving (TH) and the issuing (SG) side."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import SAMPLES, with_message_id
from tests.integration.helpers import (
    base_url,
    inbox,
    message_view,
    retransmission_request,
    submit,
    wait_for_file,
    wait_for_state,
)
from tests.integration.nsw_pair import Setup

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def setup(nsw_pair: Setup) -> Setup:
    """The gateway and the two simulated NSWs (``tests.integration.nsw_pair``)."""
    return nsw_pair


async def _stats(session: aiohttp.ClientSession, gateway: Gateway) -> Any:
    async with session.get(f"{base_url(gateway)}/v1/stats") as response:
        return await response.json(content_type=None)


def _relations(view: Any) -> set[tuple[str, str]]:
    return {(r["relation"], r["message_id"]) for r in view["related"]}


async def test_gateway_redelivers_a_journalled_form_d_itself(
    setup: Setup, sample_formd: bytes
) -> None:
    """TH asks again for an e-Form D the journal holds: the gateway re-delivers it to TH under
    the same message id, marked as a re-transmission; SG's NSW never sees the request and the
    journal's counts of e-Form Ds do not change."""
    formd_id = str(uuid.uuid4())
    gateway = setup.gateway
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, gateway, with_message_id(sample_formd, formd_id))
        assert status == 202, body
        await wait_for_state(session, gateway, formd_id, "RECEIPTED")
        before = await _stats(session, gateway)
        request_id, request = retransmission_request(formd_id)
        status, body, _ = await submit(session, gateway, request)
        assert status == 202, body
        # Served: DELIVERED when the e-Form D reached TH again (no receipt: it was receipted
        # on its first delivery).
        served = await wait_for_state(session, gateway, request_id, "DELIVERED")
        formd = await message_view(session, gateway, formd_id)
        after = await _stats(session, gateway)
    th = setup.nsw_th.simulator
    assert th.received.count(formd_id) == 2
    assert th.retransmissions == [(formd_id, request_id)]
    assert request_id not in setup.nsw_sg.simulator.received
    assert ("retransmission-request", request_id) in _relations(formd)
    assert formd["state"] == "RECEIPTED"
    assert [row["state"] for row in formd["timeline"]].count("DELIVERED") == 1
    queued = [row for row in served["timeline"] if row["state"] == "QUEUED"]
    assert queued and formd_id in (queued[0]["detail"] or "")
    # Only the request (and its receipt to TH) is new in the journal: TH's row gains nothing.
    assert after["by_receiver"]["TH"] == before["by_receiver"]["TH"]


async def test_request_from_anyone_but_the_receiver_is_refused(
    setup: Setup, sample_formd: bytes
) -> None:
    """MY asks SG for an e-Form D SG sent to TH: 403 retransmission-not-allowed, nothing kept."""
    formd_id = str(uuid.uuid4())
    gateway = setup.gateway
    async with aiohttp.ClientSession() as session:
        status, _, _ = await submit(session, gateway, with_message_id(sample_formd, formd_id))
        assert status == 202
        request_id, request = retransmission_request(formd_id, sender="MY")
        status, body, content_type = await submit(session, gateway, request)
        async with session.get(f"{base_url(gateway)}/v1/messages/{request_id}") as response:
            unknown = response.status
    assert status == 403
    assert content_type == "application/problem+json"
    assert body["code"] == "retransmission-not-allowed"
    assert "only TH may ask" in body["detail"]
    assert unknown == 404


async def test_request_for_an_unknown_form_d_goes_to_the_issuing_nsw(setup: Setup) -> None:
    """The journal does not hold the e-Form D: the request reaches SG's NSW, which sends the
    e-Form D again; the gateway delivers it to TH and links it to the request (ANSWERED)."""
    formd_id = str(uuid.uuid4())
    issued = with_message_id(
        (SAMPLES / "formd" / "valid" / "sg-th-basic.xml").read_bytes(), formd_id
    )
    setup.nsw_sg.simulator.issued[formd_id] = issued
    gateway = setup.gateway
    async with aiohttp.ClientSession() as session:
        request_id, request = retransmission_request(formd_id)
        status, body, _ = await submit(session, gateway, request)
        assert status == 202, body
        answered = await wait_for_state(session, gateway, request_id, "ANSWERED")
        formd = await wait_for_state(session, gateway, formd_id, "RECEIPTED")
    assert request_id in setup.nsw_sg.simulator.received
    assert [(s.message_id, s.status) for s in setup.nsw_sg.simulator.resent] == [(formd_id, 202)]
    assert formd_id in setup.nsw_th.simulator.received
    assert ("retransmitted", formd_id) in _relations(answered)
    assert formd["document_type"] == "EFD"


async def test_drop_folder_gets_a_marked_copy_beside_the_original(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """TH's drop folder still holds the e-Form D: the re-transmission is written beside it as
    <id>.retransmission-<request>.xml with the same bytes; no row is added for the e-Form D."""
    gateway = running_gateway
    formd_id = str(uuid.uuid4())
    folder = inbox(gateway, "TH")
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, gateway, with_message_id(sample_formd, formd_id))
        assert status == 202, body
        assert await wait_for_file(folder / f"{formd_id}.xml")
        await wait_for_state(session, gateway, formd_id, "RECEIPTED")
        before = await _stats(session, gateway)
        request_id, request = retransmission_request(formd_id)
        status, body, _ = await submit(session, gateway, request)
        assert status == 202, body
        await wait_for_state(session, gateway, request_id, "DELIVERED")
        after = await _stats(session, gateway)
        formd = await message_view(session, gateway, formd_id)
    copy = folder / f"{formd_id}.retransmission-{request_id}.xml"
    assert copy.read_bytes() == (folder / f"{formd_id}.xml").read_bytes()
    assert [row["state"] for row in formd["timeline"]].count("DELIVERED") == 1
    assert after["by_receiver"]["TH"] == before["by_receiver"]["TH"]
