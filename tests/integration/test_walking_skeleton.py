"""One Form D from SG to TH through the real gateway, RabbitMQ and a drop folder."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest
from lxml import etree

from gateway.app import Gateway
from gateway.core.documents import restamp
from gateway.core.envelope import read_envelope
from gateway.core.parsing import ParseLimits, parse
from gateway.core.signatures import verify
from tests.conftest import SAMPLES, with_message_id
from tests.core.test_parsing import BILLION_LAUGHS, EXTERNAL_ENTITY
from tests.integration.helpers import (
    base_url,
    delivered_files,
    inbox,
    submit,
    wait_for_file,
    without_element,
)
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq


async def test_form_d_is_delivered_into_the_receivers_drop_folder(
    running_gateway: Gateway, sample_formd: bytes, rsa_pki: PkiBundle
) -> None:
    """A valid Form D gets 202 and lands in TH's folder, signed for SG by the gateway."""
    message_id = str(uuid.uuid4())
    document = with_message_id(sample_formd, message_id)
    async with aiohttp.ClientSession() as session:
        status, body, content_type = await submit(session, running_gateway, document)
    assert status == 202, body
    assert content_type == "application/json"
    assert body["message_id"] == message_id
    delivered = inbox(running_gateway, "TH") / f"{message_id}.xml"
    assert await wait_for_file(delivered)
    verified = verify(parse(delivered.read_bytes()), rsa_pki.trust(), now=datetime.now(UTC))
    assert verified.signer.country == "SG"
    assert read_envelope(verified.root).message_id == message_id
    assert b"Ball bearings" in delivered.read_bytes()


async def test_bad_input_is_refused_with_distinct_codes_and_nothing_published(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Non-XML, entity bomb, XXE and a Form D missing a box each get their own 4xx code."""
    cases = {
        "non-xml": b"this is not XML",
        "billion-laughs": BILLION_LAUGHS,
        "external-entity": EXTERNAL_ENTITY,
        "missing-box": without_element(with_message_id(sample_formd), "Consignee"),
    }
    codes = {}
    async with aiohttp.ClientSession() as session:
        for name, document in cases.items():
            status, body, content_type = await submit(session, running_gateway, document)
            assert 400 <= status < 500, (name, status, body)
            assert content_type == "application/problem+json", name
            assert body["status"] == status
            assert body["type"].endswith(body["code"])
            assert body["detail"], name
            codes[name] = body["code"]
    assert codes["non-xml"] == "malformed-xml"
    assert codes["billion-laughs"] == "xml-forbidden"
    assert codes["missing-box"] in {"schema-violation", "business-rule-violation"}
    assert len({codes["non-xml"], codes["billion-laughs"], codes["missing-box"]}) == 3
    await asyncio.sleep(1.0)
    assert delivered_files(running_gateway) == []
    depths = await running_gateway.broker.queue_depths()
    assert set(depths.values()) == {0}


async def test_wrong_media_type_and_oversize_are_refused(running_gateway: Gateway) -> None:
    """A JSON body gets 415 and a body over the limit gets 413, both as problem+json."""
    url = base_url(running_gateway) + "/v1/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"form": "d"}) as response:
            assert response.status == 415
            assert (await response.json(content_type=None))["code"] == "unsupported-media-type"
        big = b"<a>" + b"x" * (running_gateway.settings.http.max_body_bytes + 10) + b"</a>"
        async with session.post(
            url, data=io.BytesIO(big), headers={"Content-Type": "application/xml"}
        ) as response:
            assert response.status == 413
            assert (await response.json(content_type=None))["code"] == "payload-too-large"


async def test_validate_endpoint_reports_without_routing(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """POST /v1/validate answers findings for a bad document and publishes nothing."""
    broken = without_element(with_message_id(sample_formd), "Consignee")
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, running_gateway, broken, "/v1/validate")
        ok_status, ok_body, _ = await submit(
            session, running_gateway, with_message_id(sample_formd), "/v1/validate"
        )
    assert status == 200
    assert body["valid"] is False
    assert body["findings"]
    assert ok_status == 200 and ok_body["valid"] is True, ok_body
    await asyncio.sleep(0.5)
    assert delivered_files(running_gateway) == []


async def test_health_reports_the_broker(running_gateway: Gateway) -> None:
    """/healthz reports the broker; unknown paths are 404 and wrong methods 405 problems."""
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url(running_gateway) + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["broker"] == "connected"
        async with session.get(base_url(running_gateway) + "/nowhere") as response:
            assert response.status == 404
            assert (await response.json(content_type=None))["code"] == "not-found"
        async with session.put(base_url(running_gateway) + "/v1/messages") as response:
            problem = await response.json(content_type=None)
            assert (response.status, problem["status"]) == (405, 405)
            assert problem["code"] == "method-not-allowed"
            assert "POST" in response.headers["Allow"]


async def test_one_megabyte_form_d_arrives_whole_and_is_delivered(
    running_gateway: Gateway,
) -> None:
    """The ~1 MB Form D sample is read to its end over HTTP, accepted and delivered to VN."""
    root = parse(
        (SAMPLES / "formd" / "valid" / "sg-vn-large-1mb.xml").read_bytes(),
        ParseLimits(max_bytes=4 * 1024 * 1024),
    )
    message_id = str(uuid.uuid4())
    copy = restamp(root, message_id=message_id, document_id=f"SG26-BIG-{message_id[:8]}")
    document = etree.tostring(copy, xml_declaration=True, encoding="UTF-8")
    assert len(document) > 1_000_000
    async with aiohttp.ClientSession() as session:
        status, body, _ = await submit(session, running_gateway, document)
    assert status == 202, body
    assert await wait_for_file(inbox(running_gateway, "VN") / f"{message_id}.xml", timeout=30)
