"""Issue 12, section 3: what is journalled is what every reader reads, attacked for real.

A document number written ``SG26-CO-12345<!---->67`` reads as ``SG26-CO-12345`` through an
element's first text node but as ``SG26-CO-1234567`` for the XSD and the receiver; journalled
as the first, it slipped past the business-key duplicate check. The hardened parser refuses a
comment anywhere inside the root; text split in ways every reader joins (CDATA) is read in
full.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import SAMPLE_DOCUMENT_ID, SAMPLE_FORMD, SAMPLE_MESSAGE_ID
from tests.integration.helpers import base_url, inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq


def _formd(number: bytes, message_id: str | None = None) -> tuple[str, bytes]:
    """The SG -> TH sample under a fresh message id with ``number`` (raw XML) as its ID."""
    message_id = message_id or str(uuid.uuid4())
    data = SAMPLE_FORMD.read_bytes().replace(SAMPLE_MESSAGE_ID, message_id.encode())
    return message_id, data.replace(
        b"<fd:ID>" + SAMPLE_DOCUMENT_ID + b"</fd:ID>", b"<fd:ID>" + number + b"</fd:ID>", 1
    )


def _number() -> bytes:
    return f"SG26-CO-{uuid.uuid4().hex[:7].upper()}".encode()


async def _status(session: aiohttp.ClientSession, gateway: Gateway, message_id: str) -> int:
    async with session.get(f"{base_url(gateway)}/v1/messages/{message_id}") as response:
        return response.status


def _delivered(gateway: Gateway) -> set[str]:
    folder: Path = inbox(gateway, "TH")
    return {p.stem for p in folder.glob("*.xml")} if folder.exists() else set()


@pytest.mark.parametrize("first", ["plain-first", "split-first"])
async def test_comment_split_document_number_is_refused(
    running_gateway: Gateway, first: str
) -> None:
    """SG26-CO-12345<!---->67 is refused (xml-forbidden), before or after the plain number."""
    number = _number()
    split = number[:-2] + b"<!---->" + number[-2:]
    plain_id, plain = _formd(number)
    split_id, forged = _formd(split)
    async with aiohttp.ClientSession() as session:
        if first == "plain-first":
            assert (await submit(session, running_gateway, plain))[0] == 202
        status, problem, _ = await submit(session, running_gateway, forged)
        assert (status, problem["code"]) == (400, "xml-forbidden"), problem
        assert "comment" in problem["detail"]
        assert await _status(session, running_gateway, split_id) == 404  # never journalled
        if first == "split-first":
            assert (await submit(session, running_gateway, plain))[0] == 202
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{plain_id}.xml")
    assert split_id not in _delivered(running_gateway)


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda n: n[:-2] + b"<![CDATA[" + n[-2:] + b"]]>", id="cdata-split"),
        pytest.param(lambda n: b"<![CDATA[" + n + b"]]>", id="cdata-whole"),
        pytest.param(lambda n: b"\n   " + n + b"  ", id="blank-around"),
    ],
)
async def test_number_spelt_differently_is_read_in_full_and_caught(
    running_gateway: Gateway, spelling: Any
) -> None:
    """The same number written with CDATA or blanks is the same business key: 409 duplicate."""
    number = _number()
    first_id, first = _formd(number)
    second_id, second = _formd(spelling(number))
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, running_gateway, first))[0] == 202
        status, problem, _ = await submit(session, running_gateway, second)
    assert (status, problem["code"]) == (409, "duplicate-business-key"), problem
    assert problem["original_message_id"] == first_id
    assert second_id not in _delivered(running_gateway)


async def test_comment_between_elements_is_refused(running_gateway: Gateway) -> None:
    """A comment next to (not inside) the number is refused too: comments are never signed."""
    number = _number()
    message_id, data = _formd(number)
    data = data.replace(b"<fd:ID>" + number, b"<!-- ours --><fd:ID>" + number, 1)
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, data)
        assert (status, problem["code"]) == (400, "xml-forbidden"), problem
        assert await _status(session, running_gateway, message_id) == 404


async def test_comment_inside_a_header_value_is_refused(running_gateway: Gateway) -> None:
    """A receiver written T<!---->H never reaches routing or the journal."""
    message_id, data = _formd(_number())
    data = data.replace(
        b"<cm:ReceiverParty><cm:CountryCode>TH<", b"<cm:ReceiverParty><cm:CountryCode>T<!---->H<"
    )
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, data)
        assert (status, problem["code"]) == (400, "xml-forbidden"), problem
        assert await _status(session, running_gateway, message_id) == 404


async def test_comment_in_a_signed_number_is_refused(
    running_gateway: Gateway, rsa_pki: PkiBundle
) -> None:
    """A comment slipped into a validly signed document's number (unsigned by C14N) is refused."""
    number = _number()
    message_id, plain = _formd(number)
    signed = rsa_pki.signed("SG", plain)
    forged = signed.replace(
        b">" + number + b"<", b">" + number[:-2] + b"<!---->" + number[-2:] + b"<", 1
    )
    assert forged != signed
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, forged)
        assert (status, problem["code"]) == (400, "xml-forbidden"), problem
        assert await _status(session, running_gateway, message_id) == 404
        status, body, _ = await submit(session, running_gateway, signed)
        assert status == 202, body
