"""The pull inbox against a real gateway: TH's NSW lists, fetches, lets a lease lapse, acks."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.pull_inbox import PullInboxOptions
from gateway.app import Gateway
from gateway.errors import SettingsError
from gateway.settings import PartySettings
from tests.conftest import with_message_id
from tests.federation.harness import KEYS, hub_settings, running
from tests.integration.helpers import retransmission_request
from tests.pki_fixtures import PkiBundle

LEASE_SECONDS = 1.0


@pytest.fixture
async def inbox_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Any:
    """A gateway where TH pulls its documents (lease 1 s) and callers use API keys."""
    settings = hub_settings(
        tmp_path,
        amqp_url,
        rsa_pki.directory,
        http={"auth": "api-key"},
        parties={
            "TH": PartySettings(
                country="TH",
                adapter="pull-inbox",
                options={"lease_seconds": str(LEASE_SECONDS)},
                sign_on_behalf=True,
            )
        },
    )
    async with running(settings) as gateway:
        yield gateway


class Client:
    """A party talking to the gateway with its API key."""

    def __init__(self, session: aiohttp.ClientSession, gateway: Gateway, party: str) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{gateway.port}"
        self.headers = {"X-API-Key": KEYS[party]}

    async def submit(self, document: bytes) -> dict[str, Any]:
        """POST /v1/messages, expecting 202."""
        async with self.session.post(
            self.base + "/v1/messages",
            data=document,
            headers={**self.headers, "Content-Type": "application/xml"},
        ) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 202, body
            return body

    async def waiting(self) -> list[str]:
        """The message ids listed in GET /v1/inbox."""
        async with self.session.get(self.base + "/v1/inbox", headers=self.headers) as response:
            assert response.status == 200
            body = await response.json()
            return [d["message_id"] for d in body["documents"]]

    async def fetch(self, message_id: str) -> tuple[int, bytes, dict[str, str]]:
        """GET /v1/inbox/{id}."""
        async with self.session.get(
            f"{self.base}/v1/inbox/{message_id}", headers=self.headers
        ) as response:
            return response.status, await response.read(), dict(response.headers)

    async def ack(self, message_id: str) -> tuple[int, dict[str, Any]]:
        """POST /v1/inbox/{id}/ack."""
        async with self.session.post(
            f"{self.base}/v1/inbox/{message_id}/ack", headers=self.headers
        ) as response:
            return response.status, await response.json()

    async def listing(self) -> list[dict[str, Any]]:
        """The entries of GET /v1/inbox."""
        async with self.session.get(self.base + "/v1/inbox", headers=self.headers) as response:
            assert response.status == 200
            documents: list[dict[str, Any]] = (await response.json())["documents"]
            return documents

    async def state(self, message_id: str) -> str:
        """The message's state in the journal."""
        async with self.session.get(
            f"{self.base}/v1/messages/{message_id}", headers=self.headers
        ) as response:
            body = await response.json()
            return str(body["state"])


async def wait_listed(client: Client, message_id: str, timeout: float = 15.0) -> None:
    """Poll the inbox until ``message_id`` waits there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if message_id in await client.waiting():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached the inbox")


async def test_retransmitted_copy_waits_again_as_its_own_entry(
    inbox_gateway: Gateway, sample_formd: bytes
) -> None:
    """TH asks again for an e-Form D it fetched and acknowledged: the copy is listed again under
    the request's id marked retransmission_of the e-Form D, fetched with both ids in its headers
    and acknowledged on its own (request DELIVERED, no receipt); the e-Form D's entry stays
    acknowledged and the journal gains no row for it."""
    formd_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        sg, th = Client(session, inbox_gateway, "SG"), Client(session, inbox_gateway, "TH")
        await sg.submit(with_message_id(sample_formd, formd_id))
        await wait_listed(th, formd_id)
        status, original, _ = await th.fetch(formd_id)
        assert status == 200
        assert (await th.ack(formd_id))[0] == 200
        request_id, request = retransmission_request(formd_id)
        await th.submit(request)
        await wait_listed(th, request_id)
        [entry] = [e for e in await th.listing() if e["message_id"] == request_id]
        assert entry["retransmission_of"] == formd_id
        assert (entry["sender"], entry["document_type"]) == ("SG", "EFD")
        assert formd_id not in await th.waiting()

        status, copy, headers = await th.fetch(request_id)
        assert status == 200
        assert copy == original
        assert headers["X-ASW-Message-ID"] == formd_id
        assert headers["X-ASW-Retransmission-Request"] == request_id
        status, answer = await th.ack(request_id)
        assert status == 200
        assert answer["repeated"] is False
        assert await th.state(request_id) == "DELIVERED"
        assert (await th.fetch(formd_id))[0] == 404
        assert (await th.ack(formd_id))[1]["repeated"] is True
        async with session.get(f"{th.base}/v1/messages/{formd_id}", headers=sg.headers) as response:
            formd = await response.json()
    assert [row["state"] for row in formd["timeline"]].count("DELIVERED") == 1


async def test_fetch_lease_and_ack(inbox_gateway: Gateway, sample_formd: bytes) -> None:
    """A document waits, is leased on fetch, waits again after the lease, and acks once."""
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        sg, th = Client(session, inbox_gateway, "SG"), Client(session, inbox_gateway, "TH")
        await sg.submit(with_message_id(sample_formd, message_id))
        await wait_listed(th, message_id)

        status, body, headers = await th.fetch(message_id)
        assert status == 200
        assert headers["Content-Type"].startswith("application/xml")
        assert headers["X-ASW-Message-ID"] == message_id
        assert headers["X-ASW-Sender"] == "SG"
        assert message_id.encode() in body
        assert message_id not in await th.waiting()  # leased
        assert (await th.fetch(message_id))[0] == 404  # a second poller: not while leased

        await asyncio.sleep(LEASE_SECONDS + 0.3)
        assert message_id in await th.waiting()  # the lease ran out: available again

        status, again, _ = await th.fetch(message_id)
        assert status == 200
        assert again == body
        status, answer = await th.ack(message_id)
        assert status == 200
        assert answer == {"message_id": message_id, "status": "acknowledged", "repeated": False}
        assert await th.state(message_id) in {"DELIVERED", "RECEIPTED"}
        assert message_id not in await th.waiting()
        assert (await th.fetch(message_id))[0] == 404

        status, answer = await th.ack(message_id)
        assert status == 200
        assert answer["repeated"] is True


@pytest.fixture
async def escalating_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Any:
    """A gateway where TH pulls (lease 0.5 s) and must acknowledge within 2 s of storage."""
    settings = hub_settings(
        tmp_path,
        amqp_url,
        rsa_pki.directory,
        http={"auth": "api-key"},
        parties={
            "TH": PartySettings(
                country="TH",
                adapter="pull-inbox",
                options={"lease_seconds": "0.5", "escalate_after_seconds": "2"},
                sign_on_behalf=True,
            )
        },
    )
    async with running(settings) as gateway:
        yield gateway


async def test_pickup_never_acknowledged_is_dead_lettered(
    escalating_gateway: Gateway, sample_formd: bytes
) -> None:
    """A document fetched and never acknowledged is DEAD (pickup-not-acknowledged) in time."""
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        sg = Client(session, escalating_gateway, "SG")
        th = Client(session, escalating_gateway, "TH")
        await sg.submit(with_message_id(sample_formd, message_id))
        await wait_listed(th, message_id)
        assert (await th.fetch(message_id))[0] == 200
        assert await th.state(message_id) != "DEAD"  # not before its time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await th.waiting()  # a listing escalates what is overdue
            if await th.state(message_id) == "DEAD":
                break
            await asyncio.sleep(0.3)
        async with session.get(
            f"{th.base}/v1/messages/{message_id}", headers=th.headers
        ) as response:
            view = await response.json()
        assert view["state"] == "DEAD"
        assert view["last_error"] == "pickup-not-acknowledged"
        assert message_id not in await th.waiting()
        assert (await th.fetch(message_id))[0] == 404
        assert (await th.ack(message_id))[0] == 404


async def test_other_partys_document_is_404(inbox_gateway: Gateway, sample_formd: bytes) -> None:
    """MY neither sees, fetches nor acknowledges a document waiting for TH."""
    message_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        sg, th = Client(session, inbox_gateway, "SG"), Client(session, inbox_gateway, "TH")
        my = Client(session, inbox_gateway, "MY")
        await sg.submit(with_message_id(sample_formd, message_id))
        await wait_listed(th, message_id)
        assert message_id not in await my.waiting()
        assert (await my.fetch(message_id))[0] == 404
        assert (await my.ack(message_id))[0] == 404
        assert message_id in await th.waiting()


async def test_inbox_needs_authentication(inbox_gateway: Gateway) -> None:
    """Without a key the inbox answers 401."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{inbox_gateway.port}/v1/inbox") as response,
    ):
        assert response.status == 401


def test_options_are_checked() -> None:
    """Unknown options and a non-positive lease stop start-up with every problem listed."""
    with pytest.raises(SettingsError) as caught:
        PullInboxOptions.parse({"lease_seconds": "0", "directory": "x"})
    assert len(caught.value.problems) == 2
    assert PullInboxOptions.parse({"lease_seconds": "42"}).lease_seconds == 42


def test_escalation_age_must_outlast_the_lease() -> None:
    """An escalation age not longer than the lease, or not a number, stops start-up."""
    with pytest.raises(SettingsError, match="escalate_after_seconds"):
        PullInboxOptions.parse({"lease_seconds": "60", "escalate_after_seconds": "60"})
    with pytest.raises(SettingsError, match="expected a number"):
        PullInboxOptions.parse({"escalate_after_seconds": "soon"})
    options = PullInboxOptions.parse({"lease_seconds": "60", "escalate_after_seconds": "3600"})
    assert (options.lease_seconds, options.escalate_after_seconds) == (60, 3600)
