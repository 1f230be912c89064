"""Two national gateways federated end to end: SG's NSW -> SG's gateway -> TH's gateway -> TH's
NSW simulator, on the committed ``config/federation/{sg,th}.toml``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asw_toolkit.processes import ROOT, ConfiguredGateway
from asw_toolkit.simulator import RunningSimulator, SimulatorConfig, find_response_template
from gateway.auth import key_digest
from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.parsing import parse
from gateway.core.receipts import receipt_message_id
from gateway.core.topology import Topology
from tests.conftest import SAMPLE_FORMD, delete_topology, with_message_id
from tests.integration.helpers import retransmission_request
from tests.pki_fixtures import PkiBundle

CONFIG = ROOT / "config" / "federation"


@dataclass(frozen=True, slots=True, kw_only=True)
class Federation:
    """The two gateways, TH's simulated NSW, and where SG's NSW exchanges files."""

    sg: ConfiguredGateway
    th: ConfiguredGateway
    nsw_th: RunningSimulator
    sg_outbox: Path
    sg_inbox: Path
    sg_nsw_key: str
    keys: dict[str, str]
    """Every API key of the run: ``th-at-sg`` (TH's gateway at SG's), ``sg-at-th``, ``th-nsw``."""
    th_nsw_key: str


def _keys(workdir: Path) -> dict[str, str]:
    """Fresh keys, written where the committed configurations expect the key files."""
    keys = {name: f"{name}-{uuid.uuid4().hex}" for name in ("sg-at-th", "th-at-sg", "th-nsw")}
    folder = workdir / "var" / "federation" / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in keys.items():
        (folder / f"{name}.key").write_text(key + "\n", encoding="utf-8")
    keys["sg-nsw"] = f"sg-nsw-{uuid.uuid4().hex}"
    return keys


@pytest.fixture
async def federation(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Callable[[bool], object]]:
    """Start TH's NSW simulator (answering Customs Responses if asked) and both gateways."""
    async with AsyncExitStack() as stack:
        gateways: list[ConfiguredGateway] = []

        async def start(respond: bool, sg_env: dict[str, str] | None = None) -> Federation:
            keys = _keys(tmp_path)
            th = ConfiguredGateway(
                name="th",
                config=CONFIG / "th.toml",
                workdir=tmp_path,
                amqp_url=amqp_url,
                pki_dir=rsa_pki.directory,
            )
            template = find_response_template((ROOT,)) if respond else None
            nsw = RunningSimulator(
                SimulatorConfig(
                    country="TH",
                    respond_to=th.url if respond else None,
                    response_template=template.read_bytes() if template else None,
                    respond_api_key=keys["th-nsw"],
                    respond_delay_seconds=0.2,
                )
            )
            await stack.enter_async_context(nsw)
            sg = ConfiguredGateway(
                name="sg",
                config=CONFIG / "sg.toml",
                workdir=tmp_path,
                amqp_url=amqp_url,
                pki_dir=rsa_pki.directory,
            )
            sg.env.update(
                {
                    "ASW_PARTIES__TH__OPTIONS__URL": th.url,
                    "ASW_PARTIES__TH__API_KEY_SHA256": key_digest(keys["th-at-sg"]),
                    "ASW_PARTIES__SG__API_KEY_SHA256": key_digest(keys["sg-nsw"]),
                    **(sg_env or {}),
                }
            )
            th.env.update(
                {
                    "ASW_PARTIES__TH__OPTIONS__URL": nsw.documents_url,
                    "ASW_PARTIES__SG__OPTIONS__URL": sg.url,
                    "ASW_PARTIES__SG__API_KEY_SHA256": key_digest(keys["sg-at-th"]),
                    "ASW_PARTIES__TH__API_KEY_SHA256": key_digest(keys["th-nsw"]),
                }
            )
            for gateway in (th, sg):
                gateways.append(gateway)
                await asyncio.to_thread(gateway.start)
            nsw_dir = tmp_path / "var" / "federation" / "sg" / "nsw" / "SG"
            return Federation(
                sg=sg,
                th=th,
                nsw_th=nsw,
                sg_outbox=nsw_dir / "outbox",
                sg_inbox=nsw_dir / "inbox",
                sg_nsw_key=keys["sg-nsw"],
                keys=keys,
                th_nsw_key=keys["th-nsw"],
            )

        try:
            yield start
        finally:
            for gateway in gateways:
                await asyncio.to_thread(gateway.stop)
            for gateway in gateways:
                await delete_topology(amqp_url, Topology(gateway.prefix), ("SG", "TH"), (500, 1000))


def drop(outbox: Path, document: bytes) -> None:
    """SG's NSW writes a document into its outbox, atomically."""
    outbox.mkdir(parents=True, exist_ok=True)
    temporary = outbox / f".{uuid.uuid4().hex}.tmp"
    temporary.write_bytes(document)
    temporary.replace(outbox / f"{uuid.uuid4().hex}.xml")


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_document_reaches_th_nsw_once(
    federation: Callable[[bool], object],
) -> None:
    """A Form D dropped by SG's NSW arrives exactly once at TH's NSW, via both gateways."""
    fed = await federation(False)  # type: ignore[misc]
    assert isinstance(fed, Federation)
    message_id = str(uuid.uuid4())
    drop(fed.sg_outbox, with_message_id(SAMPLE_FORMD.read_bytes(), message_id))
    received = fed.nsw_th.simulator.counts
    await eventually(
        lambda: message_id in received(),
        f"{message_id} at TH's NSW\nSG log:\n{fed.sg.log_tail()}\nTH log:\n{fed.th.log_tail()}",
    )
    await asyncio.sleep(1.0)  # room for a duplicate to show up
    assert received() == {message_id: 1}
    document = fed.nsw_th.simulator.documents[message_id]
    assert b"Signature" in document  # signed by SG's gateway for SG, verified by TH's
    assert (fed.sg_outbox / "done").is_dir()


def _documents_about(folder: Path, message_id: str) -> dict[DocumentType, int]:
    """Counts of documents in ``folder`` that refer to ``message_id``, by type."""
    found: dict[DocumentType, int] = {}
    if not folder.is_dir():
        return found
    for path in folder.glob("*.xml"):
        envelope = read_envelope(parse(path.read_bytes()))
        if envelope.referenced_message_id == message_id:
            found[envelope.document_type] = found.get(envelope.document_type, 0) + 1
    return found


async def test_receipt_and_response_come_back_to_sg(
    federation: Callable[[bool], object],
) -> None:
    """TH's delivery receipt and Customs Response reach SG's NSW; SG's journal shows ANSWERED."""
    fed = await federation(True)  # type: ignore[misc]
    assert isinstance(fed, Federation)
    message_id = str(uuid.uuid4())
    drop(fed.sg_outbox, with_message_id(SAMPLE_FORMD.read_bytes(), message_id))
    await eventually(
        lambda: _documents_about(fed.sg_inbox, message_id).get(DocumentType.CUSTOMS_RESPONSE) == 1,
        f"TH's Customs Response at SG's NSW\nSG log:\n{fed.sg.log_tail()}\n"
        f"TH log:\n{fed.th.log_tail()}",
    )
    await eventually(
        lambda: _documents_about(fed.sg_inbox, message_id).get(DocumentType.DELIVERY_RECEIPT) == 1,
        "TH's delivery receipt at SG's NSW",
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{fed.sg.url}/v1/messages/{message_id}", headers={"X-API-Key": fed.sg_nsw_key}
        ) as response,
    ):
        body = await response.json()
    assert response.status == 200, body
    assert body["state"] == "ANSWERED", body
    assert {link["relation"] for link in body["related"]} >= {"receipt", "response"}
    assert fed.nsw_th.simulator.counts()[message_id] == 1  # (SG's receipt of the answer too)


def _log_entries(log: Path) -> list[dict[str, object]]:
    """Every JSON line of a gateway's log (other lines skipped)."""
    entries = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _receipts_issued_for(log: Path, country: str) -> list[str]:
    """Message ids of receipts a gateway issued itself on behalf of ``country``."""
    return [
        str(entry.get("message_id"))
        for entry in _log_entries(log)
        if entry.get("channel") == "receipt" and entry.get("sender") == country
    ]


async def test_forwarding_gateway_leaves_the_receipt_to_the_remote(
    federation: Callable[[bool], object],
) -> None:
    """SG's gateway never signs a receipt as TH; TH's gateway does, after its own delivery."""
    fed = await federation(False)  # type: ignore[misc]
    assert isinstance(fed, Federation)
    message_id = str(uuid.uuid4())
    drop(fed.sg_outbox, with_message_id(SAMPLE_FORMD.read_bytes(), message_id))
    await eventually(
        lambda: _documents_about(fed.sg_inbox, message_id).get(DocumentType.DELIVERY_RECEIPT) == 1,
        "TH's delivery receipt at SG's NSW",
    )
    assert _receipts_issued_for(fed.sg.log_path, "TH") == []
    assert len(_receipts_issued_for(fed.th.log_path, "TH")) == 1


async def _post(
    url: str, document: bytes, key: str, request_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    """POST ``document`` to a gateway's /v1/messages as the key's party, marked as the
    re-transmission of ``request_id`` if given."""
    headers = {"X-API-Key": key, "Content-Type": "application/xml"}
    if request_id is not None:
        headers["X-ASW-Retransmission-Request"] = request_id
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/messages", data=document, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def _view(url: str, message_id: str, key: str) -> tuple[int, dict[str, Any]]:
    """GET /v1/messages/{id} on a gateway as the key's party."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/messages/{message_id}", headers={"X-API-Key": key}) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_retransmission_from_sg_gateway_reaches_th_nsw_marked(
    federation: Callable[[bool], object], rsa_pki: PkiBundle
) -> None:
    """SG's gateway re-delivers a journalled e-Form D on TH's request through TH's gateway: it
    forwards the copy marked with the request, TH's gateway checks it is the very e-Form D it
    holds and re-delivers it to TH's NSW marked, with no new journal row. A copy with other
    bytes is refused (409 retransmission-mismatch), and so is one sent by TH's own NSW."""
    fed = await federation(False)  # type: ignore[misc]
    assert isinstance(fed, Federation)
    formd_id = str(uuid.uuid4())
    drop(fed.sg_outbox, with_message_id(SAMPLE_FORMD.read_bytes(), formd_id))
    th_nsw = fed.nsw_th.simulator
    await eventually(lambda: formd_id in th_nsw.counts(), f"{formd_id} at TH's NSW")
    sg_key, th_key = fed.keys["sg-at-th"], fed.keys["th-at-sg"]

    async def delivered_at_sg() -> bool:
        status, body = await _view(fed.sg.url, formd_id, fed.sg_nsw_key)
        return status == 200 and body["state"] in ("DELIVERED", "RECEIPTED")

    deadline = time.monotonic() + 30
    while not await delivered_at_sg():
        assert time.monotonic() < deadline, "the e-Form D never delivered at SG's gateway"
        await asyncio.sleep(0.2)
    # TH's request as TH's gateway forwards it (signed for TH), asked of SG's gateway.
    request_id, request = retransmission_request(formd_id)
    status, body = await _post(fed.sg.url, rsa_pki.signed("TH", request), th_key)
    assert status == 202, body
    await eventually(
        lambda: th_nsw.retransmissions == [(formd_id, request_id)],
        f"the marked copy at TH's NSW\nSG log:\n{fed.sg.log_tail()}\nTH log:\n{fed.th.log_tail()}",
    )
    assert th_nsw.counts()[formd_id] == 2
    status, at_th = await _view(fed.th.url, formd_id, sg_key)
    assert status == 200
    assert [row["state"] for row in at_th["timeline"]].count("DELIVERED") == 1
    assert (await _view(fed.th.url, request_id, sg_key))[0] == 404  # no row for the copy

    original = th_nsw.documents[formd_id]
    status, body = await _post(fed.th.url, original + b"\n", sg_key, str(uuid.uuid4()))
    assert (status, body["code"]) == (409, "retransmission-mismatch"), body
    status, body = await _post(fed.th.url, original, fed.keys["th-nsw"], str(uuid.uuid4()))
    assert status == 403, body
    await asyncio.sleep(0.5)
    assert th_nsw.counts()[formd_id] == 2


async def _state(url: str, key: str, message_id: str) -> dict[str, object]:
    """A message's view on one gateway, as the given party sees it."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/messages/{message_id}", headers={"X-API-Key": key}) as response,
    ):
        body: dict[str, object] = await response.json()
    assert response.status == 200, body
    return body


async def test_a_receipt_from_another_signer_than_the_pinned_one_proves_nothing(
    federation: Callable[..., object],
) -> None:
    """SG pins TH's gateway to another certificate than the one TH's gateway signs with: TH's
    receipt is refused (receipt-signer-mismatch), dead-lettered at TH, never reaches SG's NSW,
    and SG's Form D stays DELIVERED (by TH's 202), not RECEIPTED."""
    pinned = "CN=TH Document Signer (DEV),O=TH Issuing Authority (DEV),C=TH"  # TH-trusted, not it
    fed = await federation(False, {"ASW_PARTIES__TH__OPTIONS__RECEIPT_SIGNER_SUBJECT": pinned})  # type: ignore[misc]
    assert isinstance(fed, Federation)
    message_id = str(uuid.uuid4())
    drop(fed.sg_outbox, with_message_id(SAMPLE_FORMD.read_bytes(), message_id))
    receipt_id = receipt_message_id(message_id)
    await eventually(
        lambda: any(
            line.get("event") == "message_dead_lettered"
            for line in _log_lines(fed.th.log_path, receipt_id)
        ),
        f"TH's receipt dead-lettered\nSG log:\n{fed.sg.log_tail()}\nTH log:\n{fed.th.log_tail()}",
    )
    dead = [
        line
        for line in _log_lines(fed.th.log_path, receipt_id)
        if line.get("event") == "message_dead_lettered"
    ]
    assert "HTTP 403" in json.dumps(dead), dead
    refused = _log_lines(fed.sg.log_path, receipt_id)
    assert "receipt-signer-mismatch" in json.dumps(refused), refused
    receipt = await _state(fed.th.url, fed.th_nsw_key, receipt_id)
    assert receipt["state"] == "DEAD", receipt
    original = await _state(fed.sg.url, fed.sg_nsw_key, message_id)
    assert original["state"] == "DELIVERED", original
    assert _documents_about(fed.sg_inbox, message_id).get(DocumentType.DELIVERY_RECEIPT) is None


def _log_lines(log: Path, message_id: str) -> list[dict[str, object]]:
    """The JSON log lines of a gateway about ``message_id``."""
    return [entry for entry in _log_entries(log) if entry.get("message_id") == message_id]
