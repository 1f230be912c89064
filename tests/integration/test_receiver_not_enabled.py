"""The parties plan over real HTTP: a receiver that does not take a document is refused with
receiver-not-enabled before anything is queued, and the plan is read from the settings."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import DocumentSettings
from tests.conftest import SAMPLES, XSD_DIR, delete_topology, make_settings, with_message_id
from tests.integration.helpers import delivered_files, inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

ACDD_SG_KH_ONLY = """
version = "test-acdd-pairs"
{members}
[[exchange]]
document = "EFD"
since = 2018-01-01
members = {ten}
[[exchange]]
document = "RCT"
since = 2018-01-01
members = {ten}
[[exchange]]
document = "ACDD"
since = 2020-12-31
pairs = [["SG", "KH"]]
"""


@pytest.fixture
async def pairs_gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A real gateway whose parties plan (documents.parties_file) runs ACDD only SG-KH."""
    members = "\n".join(
        f'[[member]]\ncountry = "{cc}"\nmember_since = 1999-04-30' for cc in MEMBER_STATES
    )
    plan = tmp_path / "parties.toml"
    plan.write_text(ACDD_SG_KH_ONLY.format(members=members, ten=list(MEMBER_STATES)))
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
    settings = dataclasses.replace(
        settings, documents=DocumentSettings(xsd_dir=str(XSD_DIR), parties_file=str(plan))
    )
    gateway = Gateway(settings)
    await gateway.start(port=0)
    assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    try:
        yield gateway
    finally:
        await gateway.stop()
        await delete_topology(
            amqp_url, Topology(prefix), MEMBER_STATES, gateway.broker.retry_delays_ms
        )


async def test_form_d_for_timor_leste_is_receiver_not_enabled(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """TL is a member but no ASW party by default: 422 receiver-not-enabled, nothing queued."""
    document = with_message_id(sample_formd)
    for old, new in (
        (b"<cm:ReceiverParty><cm:CountryCode>TH<", b"<cm:ReceiverParty><cm:CountryCode>TL<"),
        (b"<fd:Destination><fd:CountryCode>TH<", b"<fd:Destination><fd:CountryCode>TL<"),
    ):
        assert old in document
        document = document.replace(old, new, 1)
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, document)
    assert status == 422, problem
    assert problem["code"] == "receiver-not-enabled"
    assert "Timor-Leste (TL) does not take the e-Form D from SG" in problem["detail"]
    assert delivered_files(running_gateway) == []


async def test_plan_from_the_settings_refuses_acdd_outside_its_pairs(
    pairs_gateway: Gateway,
) -> None:
    """ACDD SG->MY is refused where the plan runs ACDD only SG-KH; a Form D still goes."""
    acdd = (SAMPLES / "acdd" / "valid" / "sg-my-electronics.xml").read_bytes()
    message_id = str(uuid.uuid4())
    formd = with_message_id(
        (SAMPLES / "formd" / "valid" / "sg-th-basic.xml").read_bytes(), message_id
    )
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, pairs_gateway, acdd)
        assert status == 422, problem
        assert problem["code"] == "receiver-not-enabled"
        assert "MY does not take the ACDD from SG" in problem["detail"]
        status, body, _ = await submit(session, pairs_gateway, formd)
        assert status == 202, body
    assert await wait_for_file(inbox(pairs_gateway, "TH") / f"{message_id}.xml")
    assert not list(inbox(pairs_gateway, "MY").glob("*.xml"))
