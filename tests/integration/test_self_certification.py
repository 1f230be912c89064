"""Self-certification end to end (issue 18 §4): register updates and Origin Declarations go
through a real gateway, RabbitMQ and a simulated importing NSW over HTTP, and each declaration
is checked against the register as it stood on its date."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asw_toolkit.processes import delete_topology
from asw_toolkit.simulator import RunningSimulator, SimulatorConfig, find_response_template
from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import ROOT, SAMPLES, make_settings
from tests.integration.helpers import base_url, submit
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

GRANT = SAMPLES / "ce-register" / "valid" / "sg-1-grant-orchid-foods.xml"
AMEND = ROOT / "tests" / "data" / "ce-register" / "sg-2-amend-orchid-foods.xml"
DECLARATION = SAMPLES / "origin-declaration" / "valid" / "sg-my-orchid-foods.xml"
REGISTER = "/v1/registers/certified-exporters/SG"
OD_REJECTION = SAMPLES / "rejection" / "valid" / "my-sg-origin-declaration-rejected.xml"
CLARIFICATION = SAMPLES / "clarification" / "valid" / "sg-th-hs-code-explained.xml"


def _fresh(path: Path, *edits: tuple[str, str]) -> tuple[str, bytes]:
    """The sample under a new message id, with literal ``(old, new)`` edits (first match each)."""
    message_id = str(uuid.uuid4())
    text = re.sub(
        r"<cm:MessageID>[^<]+</cm:MessageID>",
        f"<cm:MessageID>{message_id}</cm:MessageID>",
        path.read_text(encoding="utf-8"),
    )
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return message_id, text.encode()


def _declaration(day: str, number: str, *edits: tuple[str, str]) -> tuple[str, bytes]:
    """An Origin Declaration dated ``day`` with carrier document (and number) ``number``."""
    return _fresh(
        DECLARATION,
        ("2026-11-19", day),
        ("2026-11-19", day),
        ("INV-OFF-2026-1187", number),
        ("INV-OFF-2026-1187", number),
        *edits,
    )


@pytest.fixture
async def nsw_my() -> AsyncIterator[RunningSimulator]:
    """Malaysia's simulated NSW: it answers each Origin Declaration with a Customs Response."""
    template = find_response_template((ROOT,))
    assert template is not None
    config = SimulatorConfig(
        country="MY", response_template=template.read_bytes(), respond_delay_seconds=0.1
    )
    async with RunningSimulator(config) as running:
        yield running


@pytest.fixture
async def gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle, nsw_my: RunningSimulator
) -> AsyncIterator[Gateway]:
    """A real gateway that delivers to MY's simulated NSW over HTTP."""
    prefix = f"test-selfcert-{uuid.uuid4().hex[:8]}"
    base = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
    parties = dict(base.parties)
    parties["MY"] = dataclasses.replace(
        parties["MY"], adapter="http-push", options={"url": nsw_my.documents_url}
    )
    gw = Gateway(dataclasses.replace(base, parties=parties))
    await gw.start(port=0)
    assert await gw.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    simulator = nsw_my.simulator
    simulator.config = dataclasses.replace(simulator.config, respond_to=base_url(gw))
    try:
        yield gw
    finally:
        await gw.stop()
        await delete_topology(amqp_url, Topology(prefix), MEMBER_STATES, gw.broker.retry_delays_ms)


async def _get(session: aiohttp.ClientSession, gw: Gateway, path: str) -> tuple[int, Any]:
    async with session.get(base_url(gw) + path) as response:
        return response.status, await response.json(content_type=None)


async def _state(session: aiohttp.ClientSession, gw: Gateway, mid: str, state: str) -> Any:
    view: Any = None
    for _ in range(150):
        _, view = await _get(session, gw, f"/v1/messages/{mid}")
        if view.get("state") == state:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{mid} never reached {state}: {view}")


def _codes(body: Any) -> list[str]:
    return sorted(f["code"] for f in body.get("findings", []))


async def test_declarations_are_checked_against_the_register_on_their_date(
    gateway: Gateway, nsw_my: RunningSimulator
) -> None:
    """GRANT, a declaration answered by MY, an AMEND, then declarations before and after it."""
    async with aiohttp.ClientSession() as session:
        # Before the GRANT: the exporter is not in the register.
        _, early = _declaration("2026-11-18", "INV-0")
        status, body, _ = await submit(session, gateway, early)
        assert status == 422
        assert _codes(body) == ["od-exporter-not-registered"]
        # The dry run reports the same register finding, and stores nothing.
        status, body, _ = await submit(session, gateway, early, "/v1/validate")
        assert status == 200 and body["valid"] is False
        assert _codes(body) == ["od-exporter-not-registered"]

        grant_id, grant = _fresh(GRANT)
        status, body, _ = await submit(session, gateway, grant)
        assert status == 202, body
        # The register update travels to the partner like any document.
        await _state(session, gateway, grant_id, "RECEIPTED")
        assert grant_id in nsw_my.simulator.received

        first_id, first = _declaration("2026-11-21", "INV-1", ("Tan Mei Ling", "Rajesh Kumar"))
        status, body, _ = await submit(session, gateway, first)
        assert status == 202, body
        answered = await _state(session, gateway, first_id, "ANSWERED")
        related = {r["relation"]: r["message_id"] for r in answered["related"]}
        assert sorted(related) == ["receipt", "register-entry", "response"]
        assert related["register-entry"] == grant_id  # the update it was read against

        # The register changes: from 22 November Rajesh Kumar no longer signs.
        amend_id, amend = _fresh(AMEND, ("2026-09-01", "2026-11-22"))
        status, body, _ = await submit(session, gateway, amend)
        assert status == 202, body

        _, after = _declaration("2026-11-23", "INV-2", ("Tan Mei Ling", "Rajesh Kumar"))
        status, body, _ = await submit(session, gateway, after)
        assert status == 422
        assert _codes(body) == ["od-signatory-not-registered"]
        status, body, _ = await submit(session, gateway, after, "/v1/validate")
        assert status == 200 and body["valid"] is False
        assert _codes(body) == ["od-signatory-not-registered"]
        assert body["findings"][0]["message"].startswith("Signatory/Name 'Rajesh Kumar'")

        # A declaration dated before the change is still read against the old register.
        before_id, before = _declaration("2026-11-21", "INV-3", ("Tan Mei Ling", "Rajesh Kumar"))
        status, body, _ = await submit(session, gateway, before)
        assert status == 202, body
        _, after_change = _declaration("2026-11-24", "INV-6")
        status, body, _ = await submit(session, gateway, after_change)
        assert status == 202, body
        _, view = await _get(session, gateway, f"/v1/messages/{body['message_id']}")
        assert {"message_id": amend_id, "relation": "register-entry"}.items() <= (
            view["related"][0].items()
        )

        _, product = _declaration("2026-11-23", "INV-4", ("18069010", "17049099"))
        status, body, _ = await submit(session, gateway, product)
        assert status == 422
        assert _codes(body) == ["od-product-not-authorised"]

        # Imported more than 12 months later: a warning only, the declaration goes through.
        late_id, late = _declaration(
            "2026-11-23",
            "INV-5",
            (
                "<od:ImportCountryCode>MY</od:ImportCountryCode>",
                "<od:ImportCountryCode>MY</od:ImportCountryCode>\n"
                "    <od:ImportationDate>2027-12-01</od:ImportationDate>",
            ),
        )
        status, body, _ = await submit(session, gateway, late)
        assert status == 202, body
        assert [w["code"] for w in body["warnings"]] == ["od-imported-after-12-months"]

        # An AMEND of an authorisation SG never granted is refused.
        _, unknown = _fresh(AMEND, ("SGCE000123", "SGCE999999"))
        status, body, _ = await submit(session, gateway, unknown)
        assert status == 422
        assert _codes(body) == ["ce-authorisation-unknown"]

        # Who granted what, when, what changed.
        status, record = await _get(session, gateway, f"{REGISTER}/SGCE000123?on=2026-11-21")
        assert status == 200
        assert [(e["action"], e["message_id"]) for e in record["history"]] == [
            ("GRANT", grant_id),
            ("AMEND", amend_id),
        ]
        assert record["standing"]["signatories"] == ["Tan Mei Ling", "Rajesh Kumar"]
        _, now = await _get(session, gateway, f"{REGISTER}/SGCE000123?on=2026-11-23")
        assert now["standing"]["signatories"] == ["Tan Mei Ling"]
        assert now["standing"]["status"] == "active"
        _, register = await _get(session, gateway, f"{REGISTER}?on=2026-02-01")
        assert register["exporters"] == []
        status, _ = await _get(session, gateway, f"{REGISTER}/NOPE")
        assert status == 404

        for mid in (before_id, late_id):
            await _state(session, gateway, mid, "ANSWERED")


async def test_an_origin_declaration_is_rejected_and_clarified(
    gateway: Gateway, nsw_my: RunningSimulator
) -> None:
    """MY rejects SG's Origin Declaration with reasons (Rules 13(3), 30): the rejection is
    linked to it and its 60-day window shows 'used'; TH may not reject it; SG's clarification
    is linked to the rejection and reaches MY's NSW."""
    async with aiohttp.ClientSession() as session:
        grant_id, grant = _fresh(GRANT)
        assert (await submit(session, gateway, grant))[0] == 202
        await _state(session, gateway, grant_id, "RECEIPTED")
        od_id, declaration = _declaration("2026-11-21", "INV-R1")
        status, body, _ = await submit(session, gateway, declaration)
        assert status == 202, body
        view = await _state(session, gateway, od_id, "ANSWERED")
        assert [(d["name"], d["status"]) for d in view["deadlines"]] == [
            ("rejection window", "open")
        ]
        original_id = "7c2e9f30-4d51-4b62-8a73-9e0f1a2b3c44"
        _, stray = _fresh(
            OD_REJECTION, (original_id, od_id), ("<cm:CountryCode>MY", "<cm:CountryCode>TH")
        )
        status, body, _ = await submit(session, gateway, stray)
        assert status == 403, body
        assert body["code"] == "reply-not-allowed"
        rejection_id, rejection = _fresh(OD_REJECTION, (original_id, od_id))
        status, body, _ = await submit(session, gateway, rejection)
        assert status == 202, body
        clarification_id, clarification = _fresh(
            CLARIFICATION,
            ("5a2b7c9d-1e3f-4a6b-8c0d-2e4f6a8b0c11", rejection_id),
            ("<cm:CountryCode>TH", "<cm:CountryCode>MY"),
            ("<rj:TypeCode>EFD", "<rj:TypeCode>OD"),
        )
        status, body, _ = await submit(session, gateway, clarification)
        assert status == 202, body
        for _ in range(150):
            if clarification_id in nsw_my.simulator.received:
                break
            await asyncio.sleep(0.1)
        _, declared = await _get(session, gateway, f"/v1/messages/{od_id}")
        _, rejected = await _get(session, gateway, f"/v1/messages/{rejection_id}")
    assert clarification_id in nsw_my.simulator.received
    assert {"message_id": rejection_id, "relation": "rejection"} in [
        {k: r[k] for k in ("message_id", "relation")} for r in declared["related"]
    ]
    assert [(d["name"], d["status"]) for d in declared["deadlines"]] == [
        ("rejection window", "used")
    ]
    assert rejected["document_type"] == "REJ"
    assert clarification_id in [
        r["message_id"] for r in rejected["related"] if r["relation"] == "clarification"
    ]
