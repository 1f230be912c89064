"""Refusals carry findings a trade officer can act on: box, path, line, message, hint."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import base_url, delivered_files, submit

pytestmark = pytest.mark.rabbitmq


async def test_business_rule_error_is_422_with_box_and_hint(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A malformed origin criterion is business-rule-violation with a box 8 finding."""
    document = with_message_id(sample_formd)
    assert b">CTH<" in document
    broken = document.replace(b">CTH<", b">CTX<", 1)
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, broken)
    assert status == 422
    assert problem["code"] == "business-rule-violation"
    finding = next(f for f in problem["findings"] if f["code"] == "origin-criterion-format")
    assert finding["box"] == "8"
    assert "CTX" in finding["message"]
    assert finding["hint"]
    assert finding["line"] and finding["path"]
    assert delivered_files(running_gateway) == []


async def test_schema_error_is_422_schema_violation_with_path_and_line(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A receiver outside the member-state code list is schema-violation, with path and line."""
    document = with_message_id(sample_formd)
    broken = document.replace(
        b"<cm:CountryCode>TH</cm:CountryCode>", b"<cm:CountryCode>XX</cm:CountryCode>", 1
    )
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, broken)
    assert status == 422, problem
    assert problem["code"] == "schema-violation"
    assert problem["findings"]
    assert all(f["path"] and f["line"] for f in problem["findings"])
    assert any("XX" in f["message"] for f in problem["findings"])


DOCUMENT_JSON = "/v1/messages/{message_id}/document.json"


async def test_stored_document_is_served_as_json_with_guard_headers(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """GET .../document.json answers the accepted Form D decoded by its schema, sandboxed."""
    message_id = str(uuid.uuid4())
    url = base_url(running_gateway) + DOCUMENT_JSON.format(message_id=message_id)
    async with aiohttp.ClientSession() as session:
        status, _, _ = await submit(
            session, running_gateway, with_message_id(sample_formd, message_id)
        )
        assert status == 202
        async with session.get(url) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert response.headers["Content-Security-Policy"] == "sandbox"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            body = await response.json()
        async with session.get(url.replace(message_id, str(uuid.uuid4()))) as missing:
            assert missing.status == 404
            assert (await missing.json(content_type=None))["code"] == "not-found"
    assert body["message_id"] == message_id
    header = body["document"]["EFormD"]["MessageHeader"]
    assert header["MessageID"] == message_id
    items = body["document"]["EFormD"]["Declaration"]["GoodsShipment"]["GovernmentAgencyGoodsItem"]
    assert items[0]["Commodity"]["GoodsMeasure"]["GrossMassMeasure"]["@unitCode"] == "KGM"
