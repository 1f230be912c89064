"""Issue 12, section 2: only the right party may answer or receipt a message, attacked for real.

A running gateway with API-key authentication (each NSW its own key), RabbitMQ, drop folders,
an HTTP-push NSW for TH that the test can take down, and MY reached through a "remote
gateway" (a small HTTP server of the test). SG sends Form Ds to TH; other parties try to
answer or receipt them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from lxml import etree

from gateway.app import Gateway
from gateway.auth import key_digest
from gateway.core.envelope import (
    MEMBER_STATES,
    NS_COMMON,
    DocumentType,
    Envelope,
    FunctionCode,
    Party,
)
from gateway.core.receipts import (
    Original,
    ReceiptSignerPin,
    authorise_reference,
    build_receipt,
    receipt_message_id,
)
from gateway.core.signatures import load_signing_key, sign
from gateway.core.topology import Topology
from gateway.core.trust import Signer
from gateway.errors import RejectedMessage
from gateway.settings import PartySettings
from tests.conftest import SAMPLES, delete_topology, make_settings, with_message_id
from tests.integration.helpers import base_url, inbox, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

KEYS = {cc: f"test-key-{cc.lower()}-{uuid.uuid4().hex[:6]}" for cc in MEMBER_STATES}
RESPONSE_SAMPLE = SAMPLES / "response" / "valid" / "th-sg-formd-utilised.xml"


@dataclasses.dataclass
class Peers:
    """The test's HTTP side: TH's NSW endpoint (can be down) and MY's remote gateway."""

    th_up: bool = True
    th_received: list[str] = dataclasses.field(default_factory=list)
    my_received: list[str] = dataclasses.field(default_factory=list)
    url: str = ""


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    """A real HTTP server standing in for TH's NSW (``/nsw/th``) and MY's gateway."""
    state = Peers()

    async def th_nsw(request: web.Request) -> web.Response:
        await request.read()
        if not state.th_up:
            return web.Response(status=503, text="down for maintenance")
        state.th_received.append(request.headers.get("X-ASW-Message-ID", ""))
        return web.Response(status=200, text="ok")

    async def my_gateway(request: web.Request) -> web.Response:
        await request.read()
        state.my_received.append(request.headers.get("X-ASW-Message-ID", ""))
        return web.json_response({"state": "QUEUED"}, status=202)

    app = web.Application()
    app.router.add_post("/nsw/th", th_nsw)
    app.router.add_post("/v1/messages", my_gateway)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle, peers: Peers
) -> AsyncIterator[Gateway]:
    """A gateway where every party authenticates with its own API key."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    base = make_settings(
        tmp_path,
        amqp_url,
        prefix,
        rsa_pki.directory,
        sign_on_behalf=frozenset(MEMBER_STATES) - {"MY"},
    )
    parties = {
        cc: dataclasses.replace(party, api_key_sha256=(key_digest(KEYS[cc]),))
        for cc, party in base.parties.items()
    }
    parties["TH"] = dataclasses.replace(
        parties["TH"],
        adapter="http-push",
        options={"url": f"{peers.url}/nsw/th", "timeout_seconds": "5", "breaker_failures": "1000"},
    )
    parties["MY"] = PartySettings(
        country="MY",
        adapter="remote-gateway",
        options={
            "url": peers.url,
            "api_key": "key-at-my",
            "breaker_failures": "1000",
            # MY's gateway's own receipt signer, by fingerprint (colons and case as printed).
            "receipt_signer_sha256": ":".join(
                f"{b:02X}" for b in _certificate(rsa_pki, "MY", "gateway").fingerprint(SHA256())
            ),
        },
        api_key_sha256=(key_digest(KEYS["MY"]),),
    )
    settings = dataclasses.replace(
        base,
        http=dataclasses.replace(base.http, auth="api-key"),
        amqp=dataclasses.replace(base.amqp, retry_schedule_seconds=(0.4,) * 60),
        parties=parties,
    )
    gw = Gateway(settings)
    await gw.start(port=0)
    assert await gw.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    try:
        yield gw
    finally:
        await gw.stop()
        await delete_topology(amqp_url, Topology(prefix), MEMBER_STATES, gw.broker.retry_delays_ms)


async def _post(
    session: aiohttp.ClientSession, gw: Gateway, caller: str, body: bytes
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/xml", "X-API-Key": KEYS[caller]}
    async with session.post(f"{base_url(gw)}/v1/messages", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _view(session: aiohttp.ClientSession, gw: Gateway, caller: str, message_id: str) -> Any:
    headers = {"X-API-Key": KEYS[caller]}
    async with session.get(f"{base_url(gw)}/v1/messages/{message_id}", headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _wait_state(
    session: aiohttp.ClientSession, gw: Gateway, message_id: str, *states: str
) -> Any:
    view: Any = None
    for _ in range(200):
        _, view = await _view(session, gw, "SG", message_id)
        if view.get("state") in states:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {states}: {view}")


async def _send_formd(session: aiohttp.ClientSession, gw: Gateway, receiver: str = "TH") -> str:
    message_id = str(uuid.uuid4())
    document = with_message_id(
        SAMPLES.joinpath("formd/valid/sg-th-basic.xml").read_bytes(), message_id
    )
    if receiver != "TH":
        for before, after in (
            (
                b"<cm:CountryCode>TH</cm:CountryCode>",
                f"<cm:CountryCode>{receiver}</cm:CountryCode>",
            ),
            (
                b"<fd:CountryCode>TH</fd:CountryCode>",
                f"<fd:CountryCode>{receiver}</fd:CountryCode>",
            ),
            (b"<fd:ID>THLCH</fd:ID>", f"<fd:ID>{receiver}PKG</fd:ID>"),
        ):
            document = document.replace(before, after.encode())
    status, body = await _post(session, gw, "SG", document)
    assert status == 202, body
    return message_id


def _response(sender: str, receiver: str, reference: str) -> tuple[str, bytes]:
    """A Customs Response from ``sender`` to ``receiver`` answering ``reference``."""
    response_id = str(uuid.uuid4())
    text = RESPONSE_SAMPLE.read_text(encoding="utf-8")
    text = re.sub(
        r"<cm:MessageID>[^<]+</cm:MessageID>", f"<cm:MessageID>{response_id}</cm:MessageID>", text
    )
    text = re.sub(
        r"<cm:ReferencedMessageID>[^<]+</cm:ReferencedMessageID>",
        f"<cm:ReferencedMessageID>{reference}</cm:ReferencedMessageID>",
        text,
    )
    text = re.sub(
        r"<cm:SenderParty>.*?</cm:SenderParty>",
        f"<cm:SenderParty><cm:CountryCode>{sender}</cm:CountryCode></cm:SenderParty>",
        text,
    )
    text = re.sub(
        r"<cm:ReceiverParty>.*?</cm:ReceiverParty>",
        f"<cm:ReceiverParty><cm:CountryCode>{receiver}</cm:CountryCode></cm:ReceiverParty>",
        text,
    )
    return response_id, text.encode()


def _receipt(
    sender: str, receiver: str, reference: str, signer: Any = None, message_id: str | None = None
) -> bytes:
    """A delivery receipt built by the gateway's own builder, optionally signed."""
    root = build_receipt(
        received_message_id=reference,
        received_document_type="EFD",
        received_payload=b"<whatever/>",
        receiver=sender,
        original_sender=receiver,
        received_at=datetime.now(UTC),
    )
    if message_id is not None:
        node = root.find(f"{{{NS_COMMON}}}MessageHeader/{{{NS_COMMON}}}MessageID")
        assert node is not None
        node.text = message_id
    if signer is not None:
        root = sign(root, signer)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _gateway_key(pki: PkiBundle, country: str) -> Any:
    issued = pki.pki.countries[country].gateway
    return load_signing_key(issued.key_pem, issued.cert_pem)


def _signer_key(pki: PkiBundle, country: str) -> Any:
    """The country's document signer: trusted for the country, but not its gateway."""
    issued = pki.pki.countries[country].signer
    return load_signing_key(issued.key_pem, issued.cert_pem)


def _certificate(pki: PkiBundle, country: str, role: str) -> x509.Certificate:
    issued = getattr(pki.pki.countries[country], role)
    return x509.load_pem_x509_certificate(issued.cert_pem)


async def _nothing_arrives(folder: Path, name: str, seconds: float = 1.5) -> bool:
    """True when ``folder/name`` is still absent after ``seconds`` (delivery is ~100 ms)."""
    await asyncio.sleep(seconds)
    return not (folder / name).exists()


def _relations(view: Any) -> set[str]:
    return {r["relation"] for r in view.get("related", [])}


@pytest.mark.parametrize("spelling", ["as-sent", "upper-case"])
async def test_third_party_cannot_answer_another_partys_message(
    gateway: Gateway, peers: Peers, spelling: str
) -> None:
    """VN answering SG's Form D to TH is refused (answer-not-allowed); nothing changes or moves."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        before = await _wait_state(session, gateway, original, "RECEIPTED")
        reference = original.upper() if spelling == "upper-case" else original
        response_id, forged = _response("VN", "SG", reference)
        status, problem = await _post(session, gateway, "VN", forged)
        assert status == 403, problem
        assert problem["code"] == "answer-not-allowed"
        assert "TH" in problem["detail"]
        after = await _wait_state(session, gateway, original, "RECEIPTED")
        assert after["timeline"] == before["timeline"]
        assert "response" not in _relations(after)
        status, _ = await _view(session, gateway, "VN", response_id)
        assert status == 404  # never journalled
    assert await _nothing_arrives(inbox(gateway, "SG"), f"{response_id}.xml")
    assert peers.th_received == [original]


async def test_receiver_cannot_send_the_answer_elsewhere(gateway: Gateway) -> None:
    """TH's answer to SG's Form D addressed to VN is refused; VN receives nothing."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        await _wait_state(session, gateway, original, "RECEIPTED")
        response_id, misdirected = _response("TH", "VN", original)
        status, problem = await _post(session, gateway, "TH", misdirected)
        assert (status, problem["code"]) == (403, "answer-not-allowed")
    assert await _nothing_arrives(inbox(gateway, "VN"), f"{response_id}.xml")


async def test_a_receipt_cannot_be_answered(gateway: Gateway) -> None:
    """SG answering TH's delivery receipt (a receipt, not a trade document) is refused."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        await _wait_state(session, gateway, original, "RECEIPTED")
        _, answer = _response("SG", "TH", receipt_message_id(original))
        status, problem = await _post(session, gateway, "SG", answer)
        assert (status, problem["code"]) == (403, "answer-not-allowed")


async def test_answer_to_a_retrying_message_does_not_stop_its_delivery(
    gateway: Gateway, peers: Peers
) -> None:
    """TH answers while its NSW is down: linked, still retried, delivered, then ANSWERED."""
    peers.th_up = False
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        await _wait_state(session, gateway, original, "RETRYING")
        response_id, answer = _response("TH", "SG", original)
        status, body = await _post(session, gateway, "TH", answer)
        assert status == 202, body
        # A forged receipt in TH's name in the meantime is refused and changes nothing either.
        status, problem = await _post(session, gateway, "TH", _receipt("TH", "SG", original))
        assert (status, problem["code"]) == (403, "receipt-not-allowed")
        for _ in range(30):
            _, linked = await _view(session, gateway, "SG", original)
            if "response" in _relations(linked):
                break
            await asyncio.sleep(0.1)
        assert "response" in _relations(linked), linked
        assert linked["state"] in ("RETRYING", "DELIVERING"), linked
        assert peers.th_received == []
        peers.th_up = True
        view = await _wait_state(session, gateway, original, "ANSWERED")
    assert peers.th_received.count(original) == 1  # (plus SG's receipt of TH's answer)
    states = [row["state"] for row in view["timeline"]]
    assert states.index("DELIVERED") < states.index("ANSWERED"), states
    assert {"response", "receipt"} <= _relations(view)
    assert await wait_for_file(inbox(gateway, "SG") / f"{response_id}.xml")


@pytest.mark.parametrize("signed", [False, True], ids=["signed-on-behalf", "signed-by-th-nsw"])
async def test_local_party_cannot_forge_its_gateways_receipt(
    gateway: Gateway, rsa_pki: PkiBundle, signed: bool
) -> None:
    """TH's NSW posting a receipt for SG's Form D is refused: this gateway issues TH's receipts."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        before = await _wait_state(session, gateway, original, "RECEIPTED")
        signer = rsa_pki.key("TH") if signed else None
        receipt = _receipt("TH", "SG", original, signer, message_id=str(uuid.uuid4()))
        status, problem = await _post(session, gateway, "TH", receipt)
        assert (status, problem["code"]) == (403, "receipt-not-allowed"), problem
        after = await _view(session, gateway, "SG", original)
        assert after[1]["timeline"] == before["timeline"]
        assert [r["relation"] for r in after[1]["related"]] == ["receipt"]


async def test_remote_gateway_cannot_receipt_what_it_did_not_deliver(
    gateway: Gateway, rsa_pki: PkiBundle, peers: Peers
) -> None:
    """MY's gateway, with its own valid key, receipting SG's Form D to TH is refused."""
    peers.th_up = False
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway)
        await _wait_state(session, gateway, original, "RETRYING")
        receipt = _receipt("MY", "SG", original, _gateway_key(rsa_pki, "MY"))
        status, problem = await _post(session, gateway, "MY", receipt)
        assert (status, problem["code"]) == (403, "receipt-not-allowed"), problem
        assert "TH" in problem["detail"]
        peers.th_up = True
        view = await _wait_state(session, gateway, original, "RECEIPTED")
    assert peers.th_received == [original]
    receipts = [r for r in view["related"] if r["relation"] == "receipt"]
    assert [r["message_id"] for r in receipts] == [receipt_message_id(original)]


async def test_remote_gateway_receipts_what_it_delivered(
    gateway: Gateway, rsa_pki: PkiBundle, peers: Peers
) -> None:
    """Control: MY's gateway receipting SG's Form D that went to MY is accepted and linked."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway, receiver="MY")
        await _wait_state(session, gateway, original, "DELIVERED")
        assert peers.my_received == [original]
        receipt = _receipt("MY", "SG", original, _gateway_key(rsa_pki, "MY"))
        status, body = await _post(session, gateway, "MY", receipt)
        assert status == 202, body
        view = await _wait_state(session, gateway, original, "RECEIPTED")
    assert "receipt" in _relations(view)


async def test_a_receipt_not_signed_by_the_remote_gateways_own_signer_is_refused(
    gateway: Gateway, rsa_pki: PkiBundle, peers: Peers
) -> None:
    """A receipt from MY signed by MY's document signer (MY's CA vouches for it, but it is not
    the pinned gateway signer) is refused 403 receipt-signer-mismatch and proves nothing."""
    async with aiohttp.ClientSession() as session:
        original = await _send_formd(session, gateway, receiver="MY")
        await _wait_state(session, gateway, original, "DELIVERED")
        forged = _receipt("MY", "SG", original, _signer_key(rsa_pki, "MY"))
        status, problem = await _post(session, gateway, "MY", forged)
        assert (status, problem["code"]) == (403, "receipt-signer-mismatch"), problem
        assert "MY Document Signer" in problem["detail"]
        await asyncio.sleep(0.5)
        _, view = await _view(session, gateway, "SG", original)
        assert view["state"] == "DELIVERED", view  # not RECEIPTED: no proof taken
        assert "receipt" not in _relations(view)


# --- the rule itself, without a server ---------------------------------------------------


def _envelope(doc_type: DocumentType, sender: str, receiver: str) -> Envelope:
    return Envelope(
        message_id=str(uuid.uuid4()),
        sender=Party(country=sender),
        receiver=Party(country=receiver),
        document_type=doc_type,
        function=FunctionCode.ORIGINAL,
        created=datetime.now(UTC),
        referenced_message_id="ref",
        test=False,
    )


FORM_D_SG_TH = Original(message_id="ref", sender="SG", receiver="TH", document_type="EFD")
RES, RCT = DocumentType.CUSTOMS_RESPONSE, DocumentType.DELIVERY_RECEIPT


def _signer(country: str, name: str) -> Signer:
    return Signer(
        subject=f"CN={country} {name},C={country}",
        country=country,
        fingerprint=f"{name}-{country}".encode().hex().ljust(64, "0")[:64],
        chain=(),
    )


def _pins(*countries: str) -> dict[str, ReceiptSignerPin]:
    """Each country's gateway pinned by its fingerprint."""
    return {
        cc: ReceiptSignerPin(fingerprints=frozenset({_signer(cc, "Gateway").fingerprint}))
        for cc in countries
        if cc
    }


Case = tuple[DocumentType, str, str, bool, bool, str, str | None]
"""Document type, sender, receiver, issued here, own signature, remote party, refusal code."""


@pytest.mark.parametrize(
    "case",
    [
        (RES, "TH", "SG", False, False, "", None),
        (RES, "VN", "SG", False, True, "", "answer-not-allowed"),
        (RES, "TH", "VN", False, True, "", "answer-not-allowed"),
        (RES, "SG", "TH", False, True, "", "answer-not-allowed"),
        (RCT, "TH", "SG", True, False, "", None),
        (RCT, "TH", "SG", False, True, "", "receipt-not-allowed"),
        (RCT, "TH", "SG", False, True, "TH", None),
        (RCT, "TH", "SG", False, False, "TH", "receipt-not-allowed"),
        (RCT, "MY", "SG", False, True, "MY", "receipt-not-allowed"),
        (RCT, "TH", "VN", True, False, "", "receipt-not-allowed"),
    ],
    ids=[
        "answer-by-receiver",
        "answer-by-third-party",
        "answer-sent-elsewhere",
        "answer-by-sender-itself",
        "receipt-issued-here",
        "receipt-from-local-party",
        "receipt-from-remote-gateway",
        "unsigned-receipt-from-remote",
        "receipt-from-other-remote",
        "receipt-sent-elsewhere",
    ],
)
def test_reference_rule(case: Case) -> None:
    """Who may answer or receipt SG's Form D to TH, case by case."""
    doc_type, sender, receiver, issued_here, signed, remote, code = case
    envelope = _envelope(doc_type, sender, receiver)

    def check() -> None:
        authorise_reference(
            envelope,
            FORM_D_SG_TH,
            issued_here=issued_here,
            signer=_signer(sender, "Gateway") if signed else None,
            remote_gateways=_pins(remote),
        )

    if code is None:
        check()
        return
    with pytest.raises(RejectedMessage) as caught:
        check()
    assert (caught.value.code, caught.value.http_status) == (code, 403)


@pytest.mark.parametrize(
    ("pin", "accepted"),
    [
        (ReceiptSignerPin(fingerprints=frozenset({_signer("TH", "Gateway").fingerprint})), True),
        (ReceiptSignerPin(subject="CN=TH Gateway,C=TH"), True),
        (ReceiptSignerPin(fingerprints=frozenset({_signer("TH", "Other").fingerprint})), False),
        (ReceiptSignerPin(subject="CN=TH Document Signer,C=TH"), False),
    ],
    ids=["fingerprint", "subject", "other-fingerprint", "other-subject"],
)
def test_a_remote_receipt_counts_only_from_the_pinned_signer(
    pin: ReceiptSignerPin, accepted: bool
) -> None:
    """TH's gateway's receipt passes only when its signer matches TH's pin (either way)."""
    envelope = _envelope(RCT, "TH", "SG")

    def check() -> None:
        authorise_reference(
            envelope,
            FORM_D_SG_TH,
            issued_here=False,
            signer=_signer("TH", "Gateway"),
            remote_gateways={"TH": pin},
        )

    if accepted:
        check()
        return
    with pytest.raises(RejectedMessage) as caught:
        check()
    assert (caught.value.code, caught.value.http_status) == ("receipt-signer-mismatch", 403)


def test_unknown_original_is_accepted_unlinked_but_outside_receipts_still_refused() -> None:
    """An answer to an unknown message passes; a local party's receipt is refused regardless."""
    kwargs: dict[str, Any] = {
        "issued_here": False,
        "signer": _signer("TH", "Gateway"),
        "remote_gateways": {},
    }
    authorise_reference(_envelope(RES, "VN", "SG"), None, **kwargs)
    with pytest.raises(RejectedMessage, match="issued by this gateway"):
        authorise_reference(_envelope(RCT, "TH", "SG"), None, **kwargs)
