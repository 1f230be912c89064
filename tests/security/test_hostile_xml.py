"""Hostile XML: each refused quickly, with its code, and without touching the network."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.core.parsing import ParseLimits, hardened_parser, parse
from gateway.errors import (
    ForbiddenXml,
    GatewayError,
    MalformedXml,
    PayloadTooLarge,
    XmlLimitExceeded,
)

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT_OPEN = b'<fd:EFormD xmlns:fd="urn:asw-gw:datamodel:EFORMD-DMS:1">'
ROOT_CLOSE = b"</fd:EFormD>"
QUICK = 1.0  # seconds: every refusal must come well within this


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A local TCP port that records whether anyone connected."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    try:
        yield server, server.getsockname()[1]
    finally:
        server.close()


def _connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def _refused(data: bytes, limits: ParseLimits | None = None) -> GatewayError:
    start = time.perf_counter()
    with pytest.raises(GatewayError) as raised:
        parse(data, limits)
    assert time.perf_counter() - start < QUICK
    return raised.value


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("billion_laughs.xml", ForbiddenXml),
        ("xxe_local_file.xml", ForbiddenXml),
        ("xinclude.xml", ForbiddenXml),
        ("processing_instruction.xml", ForbiddenXml),
    ],
)
def test_corpus_file_is_refused(name: str, error: type[GatewayError]) -> None:
    """Each corpus document is refused with its code."""
    assert isinstance(_refused((CORPUS / name).read_bytes()), error)


@pytest.mark.parametrize(
    "name", ["xxe_network.xml.in", "external_dtd_fetch.xml.in", "parameter_entity.xml.in"]
)
def test_network_entities_are_never_fetched(name: str, listener: tuple[socket.socket, int]) -> None:
    """External entities and DTDs pointing at a live local port: refused, no connection made."""
    server, port = listener
    data = (CORPUS / name).read_bytes().replace(b"@PORT@", str(port).encode())
    assert isinstance(_refused(data), ForbiddenXml)
    # The parser that re-reads signed content must not fetch either, even without the pre-check.
    with contextlib.suppress(etree.XMLSyntaxError):
        etree.fromstring(data, hardened_parser())
    assert _connections(server) == 0


def test_quadratic_blowup_is_refused() -> None:
    """One 50 KB entity referenced 10,000 times is refused before any expansion."""
    entity = b"A" * 50_000
    data = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "'
        + entity
        + b'">]>'
        + ROOT_OPEN
        + b"&a;" * 10_000
        + ROOT_CLOSE
    )
    assert isinstance(_refused(data, ParseLimits(max_bytes=len(data) + 1)), ForbiddenXml)


def test_doctype_after_the_first_4_kb_is_still_refused() -> None:
    """A DOCTYPE pushed past a long XML comment is still seen."""
    data = b"<!--" + b" " * 8192 + b'--><!DOCTYPE d [<!ENTITY a "x">]>' + ROOT_OPEN + ROOT_CLOSE
    assert isinstance(_refused(data), ForbiddenXml | MalformedXml)


def test_deep_nesting_beyond_the_gateway_limit_is_refused() -> None:
    """100 levels is more than the gateway's 64."""
    data = ROOT_OPEN + b"<a>" * 100 + b"</a>" * 100 + ROOT_CLOSE
    assert isinstance(_refused(data), XmlLimitExceeded)


def test_very_deep_nesting_is_refused_by_the_parser() -> None:
    """100,000 levels is refused by libxml2's own depth limit, quickly."""
    data = ROOT_OPEN + b"<a>" * 100_000 + b"</a>" * 100_000 + ROOT_CLOSE
    assert isinstance(_refused(data), XmlLimitExceeded)


@pytest.mark.parametrize("where", ["attribute", "text"])
def test_huge_node_is_refused(where: str) -> None:
    """A single 12 MB attribute value or text node exceeds libxml2's node size limit."""
    payload = b"A" * 12_000_000
    if where == "attribute":
        data = ROOT_OPEN[:-1] + b' x="' + payload + b'">' + ROOT_CLOSE
    else:
        data = ROOT_OPEN + payload + ROOT_CLOSE
    error = _refused(data, ParseLimits(max_bytes=64 * 1024 * 1024))
    assert isinstance(error, XmlLimitExceeded)


def test_oversize_body_is_refused_before_parsing() -> None:
    """A body over the configured limit is payload-too-large, whatever it contains."""
    data = ROOT_OPEN + b"x" * 2048 + ROOT_CLOSE
    assert isinstance(_refused(data, ParseLimits(max_bytes=1024)), PayloadTooLarge)
