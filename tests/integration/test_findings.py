"""Refusals carry findings a trade officer can act on: box, path, line, message, hint."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import delivered_files, submit

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
