"""Property tests: no input to an HTTP route or a parser entry point gives 5xx or a crash.

The HTTP properties run against a real gateway in a process of its own (``asw-gateway
serve``): hypothesis builds raw requests (any route, any query parameter names and values,
header values with bytes that are not UTF-8) and sends them over a socket. The parser
properties feed mutated sample documents to ``parse``, ``read_envelope``, ``Ingest.check`` and
``Ingest.accept``: each either answers or raises the gateway's own ``GatewayError``, never
anything else. Examples are bounded so that the whole file
runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from asw_toolkit.processes import GatewayProcess
from gateway.app import build_ingest
from gateway.core.envelope import read_envelope
from gateway.core.parsing import ParseLimits, parse
from gateway.core.pipeline import Ingest
from gateway.core.trust import TrustStore
from gateway.errors import GatewayError
from gateway.trust_loader import open_trust
from tests.conftest import SAMPLES, make_settings, started
from tests.pki_fixtures import PkiBundle

HTTP_EXAMPLES = 250
PARSER_EXAMPLES = 150
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

MESSAGE_ID = str(uuid.uuid4())
GET_ROUTES = [
    "/v1/messages",
    f"/v1/messages/{MESSAGE_ID}",
    f"/v1/messages/{MESSAGE_ID}/document",
    "/v1/messages/{id}",
    "/v1/messages/{id}/document",
    "/v1/stats",
    "/v1/dead-letters",
    "/v1/certificates",
    "/v1/partners",
    "/v1/queues",
    "/v1/inbox",
    "/v1/inbox/{id}",
    "/healthz",
    "/readyz",
    "/console",
    "/console/",
    "/console/static/{id}",
]
POST_ROUTES = [
    "/v1/messages",
    "/v1/validate",
    "/v1/dead-letters/{id}/replay",
    f"/v1/dead-letters/{MESSAGE_ID}/replay",
    "/v1/inbox/{id}/ack",
]
# The query parameters each route reads (an unknown one must be ignored or refused, not crash).
ROUTE_PARAMETERS = {
    "/v1/messages": ["state", "limit", "before", "test", "sender", "receiver"],
    "/v1/certificates": ["within_days"],
    "/v1/dead-letters": ["limit"],
    "/v1/stats": ["test"],
    "/v1/inbox": ["party", "limit"],
}
HEADERS = [
    "X-Correlation-ID",
    "X-API-Key",
    "Authorization",
    "Content-Type",
    "Accept",
    "If-None-Match",
    "Range",
    "Cookie",
]
TEXT = st.text(max_size=40)
NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(str),
    st.sampled_from(["", "+5", "-0", "1e3", "0x10", "\u0665", " 7", "1000000000"]),
)
OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23))
DATETIMES = st.one_of(
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-02-30"]),
    st.datetimes(timezones=OFFSETS.map(timezone)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.dates().map(str),
)
WORDS = st.sampled_from(["true", "FALSE", "delivered", "dead", "SG", "th", "ZZ", "\x00"])
VALUES = {
    "limit": NUMBERS,
    "within_days": NUMBERS,
    "before": DATETIMES,
}
HEADER_VALUE = st.binary(max_size=300).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip()
)
PATH_SEGMENT = st.one_of(
    st.uuids().map(str), st.text(max_size=60).map(lambda t: quote(t, safe="")), TEXT.map(str)
)
BODY = st.one_of(
    st.binary(max_size=2000),
    st.just(b'{"reason": "r", "operator": "o"}'),
    st.just((SAMPLES / "formd" / "valid" / "sg-th-basic.xml").read_bytes()),
    st.builds(lambda t: json.dumps({"reason": t, "operator": t}).encode(), TEXT),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A raw HTTP/1.1 request to one of the gateway's routes."""
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "DELETE"]))
    routes = POST_ROUTES if method == "POST" else [*ROUTE_PARAMETERS, *GET_ROUTES]
    route = draw(st.sampled_from(routes))
    if "{id}" in route:
        route = route.replace("{id}", quote(draw(PATH_SEGMENT), safe="%"))
    known = ROUTE_PARAMETERS.get(route, ["limit"])
    names = draw(st.lists(st.one_of(st.sampled_from(known), TEXT), max_size=4))
    pairs = []
    for name in names:
        value = draw(st.one_of(VALUES.get(name, WORDS), TEXT))
        pairs.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    target = route + ("?" + "&".join(pairs) if pairs else "")
    headers = [b"Host: gateway", b"Connection: close"]
    for name in draw(st.lists(st.sampled_from(HEADERS), max_size=4, unique=True)):
        headers.append(name.encode() + b": " + draw(HEADER_VALUE))
    body = draw(BODY) if method == "POST" else b""
    if method == "POST":
        content_type = draw(st.sampled_from(["application/xml", "application/json", "text/xml"]))
        headers += [
            f"Content-Type: {content_type}".encode(),
            f"Content-Length: {len(body)}".encode(),
        ]
    head = f"{method} {target} HTTP/1.1\r\n".encode() + b"\r\n".join(headers) + b"\r\n\r\n"
    return head + body


def get(target: bytes, *headers: bytes) -> bytes:
    """A GET request for ``target`` with extra header lines."""
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: gateway", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def status_of(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` and return the status code and the start of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer[:2000]


@pytest.fixture
def gateway_process(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Iterator[GatewayProcess]:
    """A real gateway (HTTP + RabbitMQ + drop folders) in a process of its own.

    Not in this process: aiormq draws from the global ``random`` for every publish (the
    broker-alarm probe publishes twice a second), and Hypothesis, drawing here, would see its
    strategies' randomness touched by someone else (HypothesisDeprecationWarning). Out of
    process, the gateway's use of ``random`` is its own business.
    """
    workdir = tmp_path / "gateway"
    workdir.mkdir()
    with started(
        GatewayProcess(workdir=workdir, amqp_url=amqp_url, pki_dir=rsa_pki.directory)
    ) as gateway:
        yield gateway


def test_no_http_request_gets_a_5xx(gateway_process: GatewayProcess) -> None:
    """Any route, parameter, header or body: the gateway answers below 500 (never crashes)."""
    port = gateway_process.port

    @settings(
        max_examples=HTTP_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests())
    @example(request=get(b"/v1/messages?before=9999-12-31T23:59:59-14:00"))
    @example(request=get(b"/v1/certificates?within_days=1000000000"))
    @example(request=get(b"/v1/messages", b"X-Correlation-ID: " + b"\xff" * 300))
    def answered(request: bytes) -> None:
        status, answer = status_of(port, request)
        assert status < 500, (request[:500], answer)

    answered()
    health = b"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n"
    status, _ = status_of(port, health)
    assert status == 200, gateway_process.log_tail()


# --- the parser entry points ----------------------------------------------------------------

SAMPLE_FILES = sorted(p for p in SAMPLES.rglob("*.xml") if p.stat().st_size < 64 * 1024)
TOKENS = st.sampled_from(
    [
        b"<",
        b">",
        b"&",
        b"&amp;",
        b"&#0;",
        b"&#x10FFFF;",
        b"&e;",
        b"<!--x-->",
        b"<?pi x?>",
        b"<![CDATA[x]]>",
        b' xmlns:q="urn:q"',
        b'<q:x xmlns:q="urn:q"/>',
        b"<!DOCTYPE a [<!ENTITY e 'x'>]>",
        b"\x00",
        b"\xff\xfe",
        b"\xc3",
        b"</",
        b"\n",
        b"9999-12-31",
        b"-1",
        b"SG",
        b"ZZ",
    ]
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A sample document with a few bytes deleted, replaced or inserted anywhere."""
    data = bytearray(draw(st.sampled_from(SAMPLE_FILES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 8))
        insert = draw(st.one_of(TOKENS, st.binary(max_size=8)))
        data[at : at + cut] = insert
    return bytes(data)


@st.composite
def retexted_documents(draw: st.DrawFn) -> bytes:
    """A sample document with one element's text replaced by arbitrary text."""
    root = etree.fromstring(draw(st.sampled_from(SAMPLE_FILES)).read_bytes())
    elements = list(root.iter(etree.Element))
    element = draw(st.sampled_from(elements))
    text = draw(st.text(max_size=80))
    try:
        element.text = text
    except ValueError:  # lxml refuses characters XML cannot hold; such a document cannot exist
        element.text = "".join(c for c in text if c.isprintable())
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _only_gateway_errors(work: Callable[[], object]) -> None:
    with contextlib.suppress(GatewayError):
        work()


@pytest.fixture
def ingest_parts(tmp_path: Path, rsa_pki: PkiBundle) -> tuple[Ingest, TrustStore]:
    """The real ingest pipeline and trust store, as the gateway builds them."""
    settings = make_settings(tmp_path, "amqp://unused/", "props", rsa_pki.directory)
    trust = open_trust(settings, required=settings.pki.require_signature)
    assert trust is not None
    return build_ingest(settings), trust.current()


def test_parser_entry_points_raise_only_gateway_errors(
    ingest_parts: tuple[Ingest, TrustStore],
) -> None:
    """parse, read_envelope, Ingest.check and Ingest.accept on mutated samples: no crash."""
    ingest, trust = ingest_parts
    limits = ParseLimits(max_bytes=2 * 1024 * 1024, max_depth=64)

    @settings(
        max_examples=PARSER_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.one_of(mutated_documents(), retexted_documents(), st.binary(max_size=500)))
    def survives(data: bytes) -> None:
        def envelope() -> None:
            read_envelope(parse(data, limits))

        _only_gateway_errors(lambda: parse(data, limits))
        _only_gateway_errors(envelope)
        _only_gateway_errors(lambda: ingest.check(data, now=NOW))
        _only_gateway_errors(lambda: ingest.accept(data, now=NOW, trust=trust, caller=None))

    survives()
