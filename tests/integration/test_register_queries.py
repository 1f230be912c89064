"""Register lookups end to end (issue 18 §4-5): a certified-exporter lookup and an AEO status
query go through a real gateway and RabbitMQ. Where the gateway keeps the register asked it
answers itself (a signed, journalled response delivered to the asker's NSW over HTTP and linked
to the query); where it does not, the query goes to the issuing side and its answer is linked.
Only the party asked may answer."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from asw_toolkit.processes import delete_topology
from asw_toolkit.simulator import RunningSimulator, SimulatorConfig, find_response_template
from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES, NS_AEO_QUERY, NS_CE_LOOKUP, NS_DSIG
from gateway.core.register_queries import answer_message_id
from gateway.core.topology import Topology
from gateway.journal import MessageRecord
from tests.conftest import ROOT, SAMPLES, make_settings
from tests.integration.helpers import base_url, submit
from tests.integration.test_self_certification import _state, gateway, nsw_my
from tests.pki_fixtures import PkiBundle

__all__ = ["gateway", "nsw_my"]  # the fixtures this module uses

pytestmark = pytest.mark.rabbitmq

GRANT = SAMPLES / "ce-register" / "valid" / "sg-1-grant-orchid-foods.xml"
SNAPSHOT = SAMPLES / "aeo-status" / "valid" / "sg-my-snapshot.xml"
DELTA = SAMPLES / "aeo-status" / "valid" / "sg-my-delta-suspension.xml"
CE_REQUEST = SAMPLES / "ce-lookup" / "valid" / "my-sg-orchid-foods-request.xml"
CE_RESPONSE = SAMPLES / "ce-lookup" / "valid" / "sg-my-orchid-foods-response.xml"
AEO_QUERY = SAMPLES / "aeo-query" / "valid" / "my-sg-merlion-query.xml"
NOT_PARTNER = SAMPLES / "aeo-query" / "invalid" / "aeo-query-not-mra-partner.xml"
SAMPLE_QUERY_ID = "4e8a1c72-5b3d-4f19-a6e0-8d2c7b9f1a35"


def _fresh(path: Path, *edits: tuple[str, str]) -> tuple[str, bytes]:
    """The sample under a new message id, with literal ``(old, new)`` edits (every match)."""
    message_id = str(uuid.uuid4())
    text = re.sub(
        r"<cm:MessageID>[^<]+</cm:MessageID>",
        f"<cm:MessageID>{message_id}</cm:MessageID>",
        path.read_text(encoding="utf-8"),
        count=1,
    )
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return message_id, text.encode()


async def _document(session: aiohttp.ClientSession, gw: Gateway, mid: str) -> etree._Element:
    async with session.get(f"{base_url(gw)}/v1/messages/{mid}/document") as response:
        assert response.status == 200, await response.text()
        return etree.fromstring(await response.read())


def _related(view: Any) -> dict[str, str]:
    return {r["relation"]: r["message_id"] for r in view["related"]}


def _matches(root: etree._Element) -> list[tuple[str, str, str]]:
    ns = {"cl": NS_CE_LOOKUP}
    return [
        (
            m.findtext("cl:ElementCode", namespaces=ns) or "",
            m.findtext("cl:Value", namespaces=ns) or "",
            m.findtext("cl:MatchCode", namespaces=ns) or "",
        )
        for m in root.iterfind(".//cl:Match", ns)
    ]


async def test_the_gateway_answers_a_ce_lookup_from_the_register_it_keeps(
    gateway: Gateway, nsw_my: RunningSimulator
) -> None:
    """MY asks about SG's exporter: the gateway answers from SG's register, signed, linked."""
    async with aiohttp.ClientSession() as session:
        _, grant = _fresh(GRANT)
        status, body, _ = await submit(session, gateway, grant)
        assert status == 202, body

        query_id, query = _fresh(
            CE_REQUEST, ("Tan Mei Ling", "Rajesh Kumar"), ("19053110", "20098999")
        )
        status, body, _ = await submit(session, gateway, query)
        assert status == 202, body
        view = await _state(session, gateway, query_id, "ANSWERED")
        answer_id = _related(view)["ce-lookup-response"]
        assert answer_id == answer_message_id(query_id)
        assert any("answered by the gateway" in (t.get("detail") or "") for t in view["timeline"])
        assert query_id not in nsw_my.simulator.received  # SG's NSW is not asked

        # The answer is a real document: journalled, signed, delivered to MY and receipted.
        await _state(session, gateway, answer_id, "RECEIPTED")
        assert answer_id in nsw_my.simulator.received
        answer = await _document(session, gateway, answer_id)
        assert answer.find(f"{{{NS_DSIG}}}Signature") is not None
        assert _matches(answer) == [
            ("EXPORTER", "", "MATCH"),
            ("AUTHORISATION", "", "MATCH"),
            ("PRODUCT", "18069010", "MATCH"),
            ("PRODUCT", "20098999", "NO_MATCH"),
            ("SIGNATORY", "Rajesh Kumar", "MATCH"),
        ]

        # Asked about a day before the grant, the register did not know the exporter.
        early_id, early = _fresh(CE_REQUEST, ("2026-11-19", "2026-02-01"))
        status, body, _ = await submit(session, gateway, early)
        assert status == 202, body
        view = await _state(session, gateway, early_id, "ANSWERED")
        early_answer = await _document(session, gateway, _related(view)["ce-lookup-response"])
        assert {code for _, _, code in _matches(early_answer)} == {"NO_MATCH"}

        # Only SG, the party asked, may answer; VN may not.
        _, intruder = _fresh(
            CE_RESPONSE,
            (SAMPLE_QUERY_ID, query_id),
            (
                "<cm:SenderParty><cm:CountryCode>SG</cm:CountryCode>",
                "<cm:SenderParty><cm:CountryCode>VN</cm:CountryCode>",
            ),
            ("<cl:ExportCountryCode>SG", "<cl:ExportCountryCode>VN"),
        )
        status, body, _ = await submit(session, gateway, intruder)
        assert status == 403 and body["code"] == "reply-not-allowed", body

        # The dry run of a query reports its rule findings too.
        _, wrong = _fresh(CE_REQUEST, ("<cl:ExportCountryCode>SG", "<cl:ExportCountryCode>TH"))
        status, body, _ = await submit(session, gateway, wrong, "/v1/validate")
        assert status == 200 and body["valid"] is False
        assert [f["code"] for f in body["findings"]] == ["register-query-wrong-country"]


async def test_a_ce_lookup_is_forwarded_where_no_register_is_kept(gateway: Gateway) -> None:
    """MY asks TH, whose register is not kept here: TH's NSW gets the query and its answer
    is linked; the query is ANSWERED."""
    async with aiohttp.ClientSession() as session:
        to_th = (
            (
                "<cm:ReceiverParty><cm:CountryCode>SG</cm:CountryCode><cm:PartyID>SG-CUSTOMS"
                "</cm:PartyID>",
                "<cm:ReceiverParty><cm:CountryCode>TH</cm:CountryCode>",
            ),
            ("<cl:ExportCountryCode>SG", "<cl:ExportCountryCode>TH"),
        )
        query_id, query = _fresh(CE_REQUEST, *to_th)
        status, body, _ = await submit(session, gateway, query)
        assert status == 202, body
        await _state(session, gateway, query_id, "RECEIPTED")  # delivered to TH's NSW
        answer_id, answer = _fresh(
            CE_RESPONSE,
            (SAMPLE_QUERY_ID, query_id),
            (
                "<cm:SenderParty><cm:CountryCode>SG</cm:CountryCode><cm:PartyID>SG-CUSTOMS"
                "</cm:PartyID>",
                "<cm:SenderParty><cm:CountryCode>TH</cm:CountryCode>",
            ),
            ("<cl:ExportCountryCode>SG", "<cl:ExportCountryCode>TH"),
        )
        status, body, _ = await submit(session, gateway, answer)
        assert status == 202, body
        view = await _state(session, gateway, query_id, "ANSWERED")
        assert _related(view)["ce-lookup-response"] == answer_id


async def test_the_gateway_answers_an_aeo_status_query_between_mra_partners(
    gateway: Gateway, nsw_my: RunningSimulator
) -> None:
    """MY asks SG about an AEO suspended by a delta: the answer says so; VN may not ask."""
    async with aiohttp.ClientSession() as session:
        for sample in (SNAPSHOT, DELTA):
            status, body, _ = await submit(session, gateway, _fresh(sample)[1])
            assert status == 202, body
        query_id, query = _fresh(AEO_QUERY)
        status, body, _ = await submit(session, gateway, query)
        assert status == 202, body
        view = await _state(session, gateway, query_id, "ANSWERED")
        answer_id = _related(view)["aeo-status-response"]
        await _state(session, gateway, answer_id, "RECEIPTED")
        answer = await _document(session, gateway, answer_id)
        ns = {"aq": NS_AEO_QUERY}
        result = {etree.QName(el).localname: el.text for el in answer.iterfind("aq:Result/*", ns)}
        assert result["FoundIndicator"] == "true" and result["ValidIndicator"] == "false"
        assert result["StatusCode"] == "SUSPENDED"
        assert result["StatusReason"] == "Security review after a seal incident."

        # Before the delta the same AEO was valid.
        earlier_id, earlier = _fresh(
            AEO_QUERY, ("2026-10-14</aq:QueryDate>", "2026-09-15</aq:QueryDate>")
        )
        status, body, _ = await submit(session, gateway, earlier)
        assert status == 202, body
        view = await _state(session, gateway, earlier_id, "ANSWERED")
        again = await _document(session, gateway, _related(view)["aeo-status-response"])
        assert again.findtext("aq:Result/aq:ValidIndicator", namespaces=ns) == "true"

        status, body, _ = await submit(session, gateway, _fresh(NOT_PARTNER)[1])
        assert status == 422
        assert [f["code"] for f in body["findings"]] == ["aeo-query-not-mra-partner"]


@pytest.fixture
async def forwarding_gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[tuple[Gateway, RunningSimulator]]:
    """A gateway configured to forward register queries, SG's simulated NSW behind it over
    HTTP answering from SG's register update (the GRANT sample)."""
    prefix = f"test-regq-{uuid.uuid4().hex[:8]}"
    base = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
    template = find_response_template((ROOT,))
    assert template is not None
    config = SimulatorConfig(
        country="SG",
        response_template=template.read_bytes(),
        respond_delay_seconds=0.1,
        registers=(GRANT.read_bytes(),),
    )
    async with RunningSimulator(config) as nsw_sg:
        parties = dict(base.parties)
        parties["SG"] = dataclasses.replace(
            parties["SG"], adapter="http-push", options={"url": nsw_sg.documents_url}
        )
        documents = dataclasses.replace(base.documents, answer_register_queries=False)
        gw = Gateway(dataclasses.replace(base, parties=parties, documents=documents))
        await gw.start(port=0)
        assert await gw.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
        simulator = nsw_sg.simulator
        simulator.config = dataclasses.replace(simulator.config, respond_to=base_url(gw))
        try:
            yield gw, nsw_sg
        finally:
            await gw.stop()
            await delete_topology(
                amqp_url, Topology(prefix), MEMBER_STATES, gw.broker.retry_delays_ms
            )


async def test_a_forwarded_lookup_is_answered_by_the_simulated_nsw(
    forwarding_gateway: tuple[Gateway, RunningSimulator],
) -> None:
    """With documents.answer_register_queries off, the gateway forwards even though it keeps
    SG's register; SG's NSW answers from its own register and the answer is linked."""
    gateway, nsw_sg = forwarding_gateway
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, gateway, _fresh(GRANT)[1])
        assert status == 202, body
        query_id, query = _fresh(CE_REQUEST)
        status, body, _ = await submit(session, gateway, query)
        assert status == 202, body
        view = await _state(session, gateway, query_id, "ANSWERED")
        assert query_id in nsw_sg.simulator.received
        answer_id = _related(view)["ce-lookup-response"]
        assert answer_id != answer_message_id(query_id)  # the NSW's, not the gateway's
        answer = await _document(session, gateway, answer_id)
        assert {code for _, _, code in _matches(answer)} == {"MATCH"}


async def test_a_query_journalled_but_never_answered_is_answered_by_the_sweep(
    gateway: Gateway,
) -> None:
    """A query left ACCEPTED (the node stopped before answering) is answered by the sweep,
    once: a second sweep finds nothing, and the answer keeps its stable id."""
    assert gateway.journal is not None and gateway.submissions is not None
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, gateway, _fresh(GRANT)[1])
        assert status == 202, body
        query_id, query = _fresh(CE_REQUEST)
        received = datetime.now(UTC) - timedelta(minutes=5)
        await gateway.journal.record_accepted(
            MessageRecord(
                message_id=query_id,
                sender="MY",
                receiver="SG",
                document_type="CEQ",
                document_id=None,
                function_code="9",
                referenced_message_id=None,
                test=False,
                size=len(query),
                digest=hashlib.sha256(query).hexdigest(),
                received_at=received,
            ),
            query,
            at=received,
        )
        swept = await gateway.submissions.sweep_unconfirmed(older_than=timedelta(minutes=1))
        assert swept >= 1
        view = await _state(session, gateway, query_id, "ANSWERED")
        assert _related(view)["ce-lookup-response"] == answer_message_id(query_id)
        assert await gateway.submissions.sweep_unconfirmed(older_than=timedelta(0)) == 0
