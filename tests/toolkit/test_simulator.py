"""The NSW simulator's own endpoints, over real HTTP on an ephemeral port."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from asw_toolkit.cli.simulate import config_from_args, register
from asw_toolkit.simulator import (
    GARBAGE_BODY,
    Behaviour,
    RunningSimulator,
    SimulatorConfig,
    build_customs_response,
    find_response_template,
    resend_document,
)
from gateway.core.envelope import NS_COMMON, DocumentType, read_envelope
from gateway.core.parsing import parse
from gateway.errors import SettingsError
from tests.conftest import ROOT, SAMPLE_FORMD, XSD_DIR, with_message_id
from tests.pki_fixtures import PkiBundle


def _document(message_id: str | None = None) -> tuple[str, bytes]:
    """The SG -> TH Form D sample under a fresh (or given) message id."""
    message_id = message_id or str(uuid.uuid4())
    return message_id, with_message_id(SAMPLE_FORMD.read_bytes(), message_id)


@pytest.fixture
async def nsw(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    """A simulated TH NSW that accepts and stores into tmp_path."""
    config = SimulatorConfig(country="TH", store_dir=tmp_path / "store", hold_seconds=30)
    async with RunningSimulator(config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def _post(http: aiohttp.ClientSession, nsw: RunningSimulator, body: bytes) -> int:
    async with http.post(
        nsw.documents_url, data=body, headers={"Content-Type": "application/xml"}
    ) as answer:
        await answer.read()
        return answer.status


async def _get(http: aiohttp.ClientSession, nsw: RunningSimulator, path: str) -> Any:
    async with http.get(nsw.url + path) as answer:
        assert answer.status == 200
        return await answer.json()


async def test_accepted_document_is_recorded_and_stored(
    nsw: RunningSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """accept: 200 with a JSON receipt; the document is kept in memory and on disk."""
    message_id, body = _document()
    async with http.post(nsw.documents_url, data=body) as answer:
        assert answer.status == 200
        assert await answer.json() == {
            "status": "accepted",
            "message_id": message_id,
            "receiver": "TH",
        }
    assert (tmp_path / "store" / f"{message_id}.xml").read_bytes() == body
    async with http.get(f"{nsw.url}/documents/{message_id}") as answer:
        assert answer.status == 200
        assert await answer.read() == body


async def test_duplicates_are_recorded_not_swallowed(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """accept: the same message id twice shows up twice, in arrival order, with counts."""
    first, body_first = _document()
    second, body_second = _document()
    for body in (body_first, body_second, body_first):
        assert await _post(http, nsw, body) == 200
    received = await _get(http, nsw, "/received")
    assert received == {
        "message_ids": [first, second, first],
        "counts": {first: 2, second: 1},
        "retransmissions": [],
    }
    stats = await _get(http, nsw, "/stats")
    assert stats["accepted"] == 3
    assert stats["unique"] == 2
    assert stats["duplicates"] == 1
    assert stats["duplicated_message_ids"] == [first]


async def test_a_retransmission_is_recorded_with_its_request(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """An e-Form D pushed with X-ASW-Retransmission-Request is listed with the request's id and
    counted as a re-transmission, not a duplicate; the same copy pushed again is a duplicate."""
    message_id, body = _document()
    request_id = str(uuid.uuid4())
    assert await _post(http, nsw, body) == 200
    headers = {"Content-Type": "application/xml", "X-ASW-Retransmission-Request": request_id}
    async with http.post(nsw.documents_url, data=body, headers=headers) as answer:
        assert answer.status == 200
    received = await _get(http, nsw, "/received")
    assert received["message_ids"] == [message_id, message_id]
    assert received["retransmissions"] == [{"message_id": message_id, "request": request_id}]
    stats = nsw.simulator.stats()
    assert (stats["retransmissions"], stats["duplicates"]) == (1, 0)
    async with http.post(nsw.documents_url, data=body, headers=headers) as answer:
        assert answer.status == 200
    stats = nsw.simulator.stats()
    assert (stats["retransmissions"], stats["duplicates"]) == (1, 1)
    assert stats["duplicated_message_ids"] == [message_id]


def test_resent_form_d_refers_to_the_request_and_keeps_its_id() -> None:
    """resend_document: same message id and body, ReferencedMessageID names the request."""
    message_id, body = _document()
    request_id = str(uuid.uuid4())
    resent = read_envelope(parse(resend_document(parse(body), request_id)))
    assert resent.message_id == message_id
    assert resent.referenced_message_id == request_id
    assert resent.document_type is DocumentType.FORM_D


async def test_behaviour_switch_at_run_time(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """POST /behaviour: down answers 503, then accept again; stats count every request."""
    async with http.post(f"{nsw.url}/behaviour", json={"behaviour": "down"}) as answer:
        assert answer.status == 200
        assert (await answer.json())["behaviour"] == "down"
    _, body = _document()
    assert await _post(http, nsw, body) == 503
    async with http.post(f"{nsw.url}/behaviour", json={"behaviour": "accept"}) as answer:
        assert answer.status == 200
    assert await _post(http, nsw, body) == 200
    stats = await _get(http, nsw, "/stats")
    assert stats["requests"] == 2
    assert stats["answers"] == {"200": 1, "503": 1}
    assert stats["accepted"] == 1


async def test_fail_then_recover_counts_from_the_switch(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """fail-then-recover: exactly fail_count answers of 500, then 200."""
    async with http.post(
        f"{nsw.url}/behaviour", json={"behaviour": "fail-then-recover", "fail_count": 2}
    ) as answer:
        assert answer.status == 200
    _, body = _document()
    statuses = [await _post(http, nsw, body) for _ in range(4)]
    assert statuses == [500, 500, 200, 200]


@pytest.mark.parametrize(
    "payload",
    [
        {"behaviour": "explode"},
        {"behaviour": "accept", "fail_count": -1},
        {"delay": "soon"},
        {"colour": "red"},
        ["accept"],
    ],
)
async def test_bad_behaviour_change_is_refused(
    nsw: RunningSimulator, http: aiohttp.ClientSession, payload: Any
) -> None:
    """POST /behaviour: an unknown behaviour or bad field is 400 and changes nothing."""
    async with http.post(f"{nsw.url}/behaviour", json=payload) as answer:
        assert answer.status == 400
        assert (await answer.json())["status"] == "invalid"
    assert nsw.simulator.behaviour == Behaviour()


async def test_reject_answers_400_with_a_json_reason(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """reject: 400 {status, code, reason}; nothing is recorded as received."""
    nsw.simulator.set_behaviour(Behaviour(name="reject"))
    _, body = _document()
    async with http.post(nsw.documents_url, data=body) as answer:
        assert answer.status == 400
        reason = await answer.json()
    assert reason["code"] == "simulated-rejection"
    assert "TH" in reason["reason"]
    assert (await _get(http, nsw, "/received"))["message_ids"] == []


async def test_garbage_answers_200_with_a_body_that_is_not_json(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """garbage: 200 and a malformed body, and the document counts as received."""
    nsw.simulator.set_behaviour(Behaviour(name="garbage"))
    message_id, body = _document()
    async with http.post(nsw.documents_url, data=body) as answer:
        assert answer.status == 200
        assert await answer.read() == GARBAGE_BODY
    assert (await _get(http, nsw, "/received"))["message_ids"] == [message_id]


async def test_malformed_document_is_refused_whatever_the_behaviour(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """accept: a body that is not XML is 400 with the gateway's error code."""
    async with http.post(nsw.documents_url, data=b"<not-closed>") as answer:
        assert answer.status == 400
        assert (await answer.json())["code"] == "malformed-xml"


async def test_document_for_another_country_is_refused(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """accept: a document addressed to MY reaching NSW TH is 400 wrong-receiver."""
    _, body = _document()
    misrouted = body.replace(
        b"<cm:ReceiverParty><cm:CountryCode>TH</cm:CountryCode>",
        b"<cm:ReceiverParty><cm:CountryCode>MY</cm:CountryCode>",
    )
    assert misrouted != body
    async with http.post(nsw.documents_url, data=misrouted) as answer:
        assert answer.status == 400
        assert (await answer.json())["code"] == "wrong-receiver"


async def test_message_id_header_must_match_the_document(
    nsw: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """accept: X-ASW-Message-ID differing from the header's MessageID is 400."""
    _, body = _document()
    async with http.post(
        nsw.documents_url, data=body, headers={"X-ASW-Message-ID": str(uuid.uuid4())}
    ) as answer:
        assert answer.status == 400
        assert (await answer.json())["code"] == "message-id-mismatch"


async def test_held_request_is_released_when_the_simulator_stops(
    http: aiohttp.ClientSession,
) -> None:
    """timeout: a held request is answered 503 on shutdown instead of blocking it."""
    config = SimulatorConfig(country="TH", behaviour=Behaviour(name="timeout"))
    nsw = RunningSimulator(config)
    await nsw.start()
    _, body = _document()
    held = asyncio.create_task(_post(http, nsw, body))
    await _until(lambda: nsw.simulator.requests == 1)
    await nsw.stop()
    assert await asyncio.wait_for(held, 5) == 503


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulate-nsw", *argv])


def test_cli_parses_every_option(tmp_path: Path) -> None:
    """simulate-nsw: the options become the simulator's configuration."""
    args = _cli(
        [
            "--country",
            "TH",
            "--port",
            "9001",
            "--behaviour",
            "fail-then-recover",
            "--fail-count",
            "4",
            "--delay",
            "0.5",
            "--store",
            str(tmp_path),
        ]
    )
    config = config_from_args(args)
    assert config.country == "TH"
    assert config.behaviour == Behaviour(name="fail-then-recover", fail_count=4, delay_seconds=0.5)
    assert config.store_dir == tmp_path
    assert args.port == 9001
    assert args.host == "127.0.0.1"
    assert callable(args.handler)


def test_cli_refuses_respond_to_without_a_template(tmp_path: Path) -> None:
    """simulate-nsw: --respond-to with a missing template is one clear error."""
    args = _cli(
        [
            "--country",
            "TH",
            "--respond-to",
            "http://127.0.0.1:8080",
            "--response-template",
            str(tmp_path / "missing.xml"),
        ]
    )
    with pytest.raises(SettingsError, match="response-template"):
        config_from_args(args)


def test_respond_to_without_a_template_is_a_configuration_error() -> None:
    """SimulatorConfig: respond_to without a template says what is missing."""
    with pytest.raises(SettingsError, match="Customs Response template"):
        SimulatorConfig(country="TH", respond_to="http://127.0.0.1:8080")


def _response_template() -> bytes:
    path = find_response_template((ROOT,))
    if path is None:
        pytest.skip(
            "no Customs Response sample under samples/response/valid/ yet "
            "(being written in another work stream)"
        )
    return path.read_bytes()


async def test_accepted_document_is_answered_with_a_customs_response(
    http: aiohttp.ClientSession,
) -> None:
    """accept + respond-to: a Customs Response referencing the document reaches the gateway."""
    template = _response_template()
    arrived: list[bytes] = []

    async def ingest(request: web.Request) -> web.Response:
        arrived.append(await request.read())
        return web.json_response({"status": "accepted"}, status=202)

    gateway = web.Application()
    gateway.router.add_post("/v1/messages", ingest)
    runner = web.AppRunner(gateway)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        config = SimulatorConfig(
            country="TH",
            respond_to=f"http://127.0.0.1:{port}",
            response_template=template,
            respond_delay_seconds=0.0,
        )
        async with RunningSimulator(config) as nsw:
            message_id, body = _document()
            assert await _post(http, nsw, body) == 200
            await _until(lambda: bool(nsw.simulator.responses))
            assert [r.status for r in nsw.simulator.responses] == [202]
    finally:
        await runner.cleanup()
    response = read_envelope(parse(arrived[0]))
    assert response.document_type is DocumentType.CUSTOMS_RESPONSE
    assert response.sender.country == "TH"
    assert response.receiver.country == "SG"
    assert response.referenced_message_id == message_id


def test_customs_response_header_is_rewritten() -> None:
    """build_customs_response: new id, swapped parties, reference set, valid against the XSD."""
    template = _response_template()
    message_id, body = _document()
    original_root = parse(body)
    original = read_envelope(original_root)
    new_id, response = build_customs_response(
        template,
        country="TH",
        answered=original,
        declaration_id="SG26-CO-0012345",
        now=datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
    )
    root = parse(response)
    header = read_envelope(root)
    assert header.message_id == new_id != message_id
    assert (header.sender.country, header.receiver.country) == ("TH", "SG")
    assert header.referenced_message_id == message_id
    assert header.created == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert root.find(f"{{{NS_COMMON}}}MessageHeader") is not None
    assert b"SG26-CO-0012345" in response
    schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "response" / "response-1.xsd")))
    assert schema.validate(etree.fromstring(response)), str(schema.error_log)


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``condition()`` holds (polled), or fail after ``seconds``."""
    for _ in range(round(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"condition still false after {seconds} s")


async def test_simulator_with_trust_verifies_what_it_receives(
    http: aiohttp.ClientSession, rsa_pki: PkiBundle
) -> None:
    """With --trust, a document signed by SG is taken; unsigned or tampered ones are refused."""
    config = SimulatorConfig(country="TH", hold_seconds=30, trust=rsa_pki.trust)
    _, body = _document()
    signed = rsa_pki.signed("SG", body)
    tampered = signed.replace(b"Ball bearings", b"Ball bearingz")
    async with RunningSimulator(config) as verifying:
        answers = {}
        for name, document in (("signed", signed), ("unsigned", body), ("tampered", tampered)):
            async with http.post(verifying.documents_url, data=document) as answer:
                answers[name] = (answer.status, (await answer.json()).get("code"))
    assert answers["signed"][0] == 200
    assert answers["unsigned"] == (400, "unsigned")
    assert answers["tampered"] == (400, "digest-mismatch")


def test_sign_with_signs_customs_responses(rsa_pki: PkiBundle) -> None:
    """--sign-with loads the simulator country's signer key for its Customs Responses."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    pki = str(rsa_pki.directory)
    args = parser.parse_args(
        ["simulate-nsw", "--country", "TH", "--sign-with", pki, "--trust", pki]
    )
    config = config_from_args(args)
    assert config.response_key is not None
    assert config.response_key.certificate.subject == rsa_pki.key("TH").certificate.subject
    assert config.trust is not None
    assert sorted(config.trust().countries) == sorted(rsa_pki.pki.countries)


def test_the_response_template_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without roots, the repository's Customs Response sample is found outside the checkout too."""
    monkeypatch.chdir(tmp_path)
    found = find_response_template()
    assert found is not None
    assert found.is_relative_to(ROOT / "samples" / "response" / "valid")
