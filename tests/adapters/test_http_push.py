"""The HTTP push adapter against the real NSW simulator on an ephemeral port (HTTP and mTLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.http_push import ANSWER_EXCERPT_CHARS, HttpPushAdapter
from asw_toolkit.simulator import Behaviour, RunningSimulator, SimulatorConfig
from gateway.core.breaker import BreakerPhase, BreakerPolicy
from gateway.core.handover import Handover
from gateway.errors import PeerTimeout, PeerUnavailable, PermanentDeliveryFailure, SettingsError
from tests.conftest import SAMPLE_FORMD, with_message_id

StartNsw = Callable[..., Awaitable[RunningSimulator]]
MakeAdapter = Callable[..., HttpPushAdapter]


def _handover() -> Handover:
    """The SG -> TH Form D sample under a fresh message id."""
    message_id = str(uuid.uuid4())
    return Handover(
        message_id=message_id,
        sender="SG",
        receiver="TH",
        document_type="EFD",
        payload=with_message_id(SAMPLE_FORMD.read_bytes(), message_id),
    )


def _phase(adapter: HttpPushAdapter) -> BreakerPhase:
    """The adapter's breaker phase right now."""
    return adapter.breaker_state.phase


@pytest.fixture
async def start_nsw() -> AsyncIterator[StartNsw]:
    """Start simulated TH NSWs (stopped at the end of the test)."""
    async with AsyncExitStack() as stack:

        async def start(
            behaviour: str = "accept",
            *,
            fail_count: int = 3,
            delay: float = 2.0,
            ssl_context: ssl.SSLContext | None = None,
        ) -> RunningSimulator:
            config = SimulatorConfig(
                country="TH",
                behaviour=Behaviour(name=behaviour, fail_count=fail_count, delay_seconds=delay),
                hold_seconds=30,
            )
            return await stack.enter_async_context(
                RunningSimulator(config, ssl_context=ssl_context)
            )

        yield start


@pytest.fixture
async def make_adapter() -> AsyncIterator[MakeAdapter]:
    """Build adapters (closed at the end of the test)."""
    made: list[HttpPushAdapter] = []

    def make(
        url: str,
        *,
        timeout: float = 5.0,
        failures: int = 5,
        reset: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> HttpPushAdapter:
        adapter = HttpPushAdapter(
            url,
            timeout_seconds=timeout,
            ssl_context=ssl_context,
            breaker=BreakerPolicy(failure_threshold=failures, reset_seconds=reset),
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


async def test_accepted_document_is_delivered_once(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """accept: deliver returns and the NSW recorded the message exactly once."""
    nsw = await start_nsw("accept")
    adapter = make_adapter(nsw.documents_url)
    handover = _handover()
    await adapter.deliver(handover)
    assert nsw.simulator.received == [handover.message_id]
    assert nsw.simulator.documents[handover.message_id] == handover.payload
    assert nsw.simulator.requests == 1
    assert await adapter.healthy() is True


async def test_rejection_is_permanent_and_carries_the_nsw_answer(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """reject: PermanentDeliveryFailure with the status and the NSW's reason in the detail."""
    nsw = await start_nsw("reject")
    adapter = make_adapter(nsw.documents_url, failures=1)
    with pytest.raises(PermanentDeliveryFailure) as caught:
        await adapter.deliver(_handover())
    assert "HTTP 400" in caught.value.detail
    assert "simulated-rejection" in caught.value.detail
    assert "rejects the document" in caught.value.detail
    assert _phase(adapter) is BreakerPhase.CLOSED  # a refusal is an answer


async def test_fail_then_recover_is_retryable_then_delivered(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """fail-then-recover: PeerUnavailable N times (HTTP 500), then delivered once."""
    nsw = await start_nsw("fail-then-recover", fail_count=3)
    adapter = make_adapter(nsw.documents_url, failures=5)
    handover = _handover()
    for _ in range(3):
        with pytest.raises(PeerUnavailable, match="HTTP 500"):
            await adapter.deliver(handover)
    await adapter.deliver(handover)
    assert nsw.simulator.received == [handover.message_id]
    assert nsw.simulator.requests == 4
    assert adapter.breaker_state.failures == 0


async def test_slow_answer_beyond_the_timeout_is_a_peer_timeout(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """slow: an answer later than timeout_seconds is PeerTimeout, within about that time."""
    nsw = await start_nsw("slow", delay=3.0)
    adapter = make_adapter(nsw.documents_url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(PeerTimeout, match=r"0\.3 s"):
        await adapter.deliver(_handover())
    assert time.monotonic() - started < 2.0


async def test_slow_answer_within_the_timeout_is_delivered(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """slow: an answer inside timeout_seconds is a delivery."""
    nsw = await start_nsw("slow", delay=0.2)
    adapter = make_adapter(nsw.documents_url, timeout=5.0)
    handover = _handover()
    await adapter.deliver(handover)
    assert nsw.simulator.received == [handover.message_id]


async def test_server_that_never_answers_is_a_peer_timeout(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """timeout: no answer at all is PeerTimeout."""
    nsw = await start_nsw("timeout")
    adapter = make_adapter(nsw.documents_url, timeout=0.3)
    with pytest.raises(PeerTimeout):
        await adapter.deliver(_handover())


async def test_garbage_answer_with_2xx_is_a_delivery(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """garbage: 2xx means delivered even when the body is not JSON; nothing is retried."""
    nsw = await start_nsw("garbage")
    adapter = make_adapter(nsw.documents_url)
    handover = _handover()
    await adapter.deliver(handover)
    assert nsw.simulator.received == [handover.message_id]


async def test_refused_connection_is_peer_unavailable(make_adapter: MakeAdapter) -> None:
    """nothing listening: a refused connection is PeerUnavailable."""
    nsw = RunningSimulator(SimulatorConfig(country="TH"))
    await nsw.start()
    url = nsw.documents_url
    await nsw.stop()  # the port is now free and nothing listens on it
    adapter = make_adapter(url)
    with pytest.raises(PeerUnavailable, match="Could not deliver"):
        await adapter.deliver(_handover())


async def test_down_nsw_opens_the_breaker_then_fails_fast_then_half_opens(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """down: N failures open the breaker; it fails fast without a request, then one trial."""
    nsw = await start_nsw("down")
    adapter = make_adapter(nsw.documents_url, failures=3, reset=0.4)
    handover = _handover()
    for _ in range(3):
        with pytest.raises(PeerUnavailable, match="HTTP 503"):
            await adapter.deliver(handover)
    assert await adapter.healthy() is False
    for _ in range(5):
        with pytest.raises(PeerUnavailable, match="circuit open"):
            await adapter.deliver(handover)
    assert nsw.simulator.stats()["requests"] == 3  # nothing reached the NSW while open

    await asyncio.sleep(0.45)
    with pytest.raises(PeerUnavailable, match="HTTP 503"):
        await adapter.deliver(handover)  # the trial reaches the NSW and fails: open again
    assert nsw.simulator.requests == 4
    with pytest.raises(PeerUnavailable, match="circuit open"):
        await adapter.deliver(handover)
    assert nsw.simulator.requests == 4

    nsw.simulator.set_behaviour(Behaviour(name="accept"))
    await asyncio.sleep(0.45)
    await adapter.deliver(handover)  # the trial succeeds: closed
    assert _phase(adapter) is BreakerPhase.CLOSED
    assert await adapter.healthy() is True
    await adapter.deliver(_handover())
    assert nsw.simulator.requests == 6


async def test_open_breaker_does_not_wait_for_a_hanging_nsw(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """timeout: once open, deliveries fail in milliseconds instead of waiting the timeout."""
    nsw = await start_nsw("timeout")
    adapter = make_adapter(nsw.documents_url, timeout=0.2, failures=2, reset=30)
    for _ in range(2):
        with pytest.raises(PeerTimeout):
            await adapter.deliver(_handover())
    started = time.monotonic()
    with pytest.raises(PeerUnavailable, match="circuit open"):
        await adapter.deliver(_handover())
    assert time.monotonic() - started < 0.05
    assert nsw.simulator.requests == 2


async def test_cancelled_trial_lets_the_next_delivery_be_the_trial(
    start_nsw: StartNsw, make_adapter: MakeAdapter
) -> None:
    """timeout: a trial cancelled mid-flight does not leave the breaker stuck half-open."""
    nsw = await start_nsw("timeout")
    adapter = make_adapter(nsw.documents_url, timeout=0.5, failures=1, reset=0.1)
    with pytest.raises(PeerTimeout):
        await adapter.deliver(_handover())
    await asyncio.sleep(0.15)
    trial = asyncio.create_task(adapter.deliver(_handover()))
    await asyncio.sleep(0.1)
    assert _phase(adapter) is BreakerPhase.HALF_OPEN
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert _phase(adapter) is BreakerPhase.OPEN
    nsw.simulator.set_behaviour(Behaviour(name="accept"))
    await adapter.deliver(_handover())
    assert _phase(adapter) is BreakerPhase.CLOSED


async def test_other_client_errors_are_permanent_but_408_and_429_are_not(
    make_adapter: MakeAdapter,
) -> None:
    """4xx: 404 is permanent with a truncated answer; 408 and 429 are retryable."""
    long_reason = "x" * 5000

    async def answer(request: web.Request) -> web.Response:
        status = int(request.query["status"])
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.Response(status=status, text=long_reason, headers=headers)

    app = web.Application()
    app.router.add_post("/documents", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/documents?status="
        with pytest.raises(PermanentDeliveryFailure) as caught:
            await make_adapter(base + "404").deliver(_handover())
        assert "HTTP 404" in caught.value.detail
        assert len(caught.value.detail) <= ANSWER_EXCERPT_CHARS
        assert caught.value.detail.endswith("x…")
        with pytest.raises(PeerUnavailable, match="HTTP 408"):
            await make_adapter(base + "408").deliver(_handover())
        with pytest.raises(PeerUnavailable, match=r"HTTP 429.*Retry-After: 7"):
            await make_adapter(base + "429").deliver(_handover())
        with pytest.raises(PermanentDeliveryFailure, match="HTTP 301"):
            await make_adapter(base + "301").deliver(_handover())
    finally:
        await runner.cleanup()


async def test_request_carries_the_asw_headers(make_adapter: MakeAdapter) -> None:
    """accept: the POST is application/xml with message id, sender and document type headers."""
    seen: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/in", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        handover = _handover()
        await make_adapter(f"http://127.0.0.1:{runner.addresses[0][1]}/in").deliver(handover)
    finally:
        await runner.cleanup()
    headers = seen[0]
    assert headers["Content-Type"] == "application/xml"
    assert headers["X-ASW-Message-ID"] == handover.message_id
    assert headers["X-ASW-Sender"] == "SG"
    assert headers["X-ASW-Document-Type"] == "EFD"


# --- TLS with client certificates ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """Throwaway CA, server and client certificate files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server certificate for 127.0.0.1 and a client certificate, plus a stray CA."""
    folder = tmp_path_factory.mktemp("http-push-pki")
    ca_key, ca_cert = _ca("Test NSW CA")
    server_key, server_cert = _leaf("nsw-th.test", ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("asw-gateway.test", ca_key, ca_cert, server=False)
    _, other_ca = _ca("Some Other CA")
    files = {
        "ca": ca_cert,
        "server_cert": server_cert,
        "client_cert": client_cert,
        "other_ca": other_ca,
    }
    for name, cert in files.items():
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, folder / "server_key.pem")
    _write_key(client_key, folder / "client_key.pem")
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server_cert.pem",
        server_key=folder / "server_key.pem",
        client_cert=folder / "client_cert.pem",
        client_key=folder / "client_key.pem",
        other_ca=folder / "other_ca.pem",
    )


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(cafile=str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def test_client_certificate_gets_through_mutual_tls(start_nsw: StartNsw, pki: Pki) -> None:
    """accept over mTLS: the adapter built from options with a client certificate delivers."""
    nsw = await start_nsw("accept", ssl_context=_server_context(pki))
    adapter = HttpPushAdapter.from_options(
        {
            "url": nsw.documents_url,
            "client_cert": str(pki.client_cert),
            "client_key": str(pki.client_key),
            "ca_file": str(pki.ca),
        }
    )
    try:
        handover = _handover()
        await adapter.deliver(handover)
    finally:
        await adapter.close()
    assert nsw.url.startswith("https://")
    assert nsw.simulator.received == [handover.message_id]


async def test_missing_client_certificate_is_refused_by_the_nsw(
    start_nsw: StartNsw, pki: Pki
) -> None:
    """accept over mTLS: without a client certificate the handshake fails (PeerUnavailable)."""
    nsw = await start_nsw("accept", ssl_context=_server_context(pki))
    adapter = HttpPushAdapter.from_options({"url": nsw.documents_url, "ca_file": str(pki.ca)})
    try:
        with pytest.raises(PeerUnavailable):
            await adapter.deliver(_handover())
    finally:
        await adapter.close()
    assert nsw.simulator.received == []


async def test_server_certificate_from_an_unknown_ca_is_refused(
    start_nsw: StartNsw, pki: Pki
) -> None:
    """accept over mTLS: a server certificate the adapter's CA did not issue fails TLS."""
    nsw = await start_nsw("accept", ssl_context=_server_context(pki))
    adapter = HttpPushAdapter.from_options(
        {
            "url": nsw.documents_url,
            "client_cert": str(pki.client_cert),
            "client_key": str(pki.client_key),
            "ca_file": str(pki.other_ca),
        }
    )
    try:
        with pytest.raises(PeerUnavailable, match="TLS"):
            await adapter.deliver(_handover())
    finally:
        await adapter.close()
    assert nsw.simulator.requests == 0


# --- options ---------------------------------------------------------------------------------


def test_options_take_defaults() -> None:
    """from_options: only url is required; timeout 10 s, breaker 5 failures / 30 s."""
    adapter = HttpPushAdapter.from_options({"url": "http://nsw.example:9001/documents"})
    assert adapter.timeout_seconds == 10.0
    assert adapter.breaker == BreakerPolicy(failure_threshold=5, reset_seconds=30.0)


def test_options_are_read() -> None:
    """from_options: timeout and breaker options are honoured."""
    adapter = HttpPushAdapter.from_options(
        {
            "url": "http://nsw.example/in",
            "timeout_seconds": "2.5",
            "breaker_failures": "2",
            "breaker_reset_seconds": "4",
        }
    )
    assert adapter.timeout_seconds == 2.5
    assert adapter.breaker == BreakerPolicy(failure_threshold=2, reset_seconds=4.0)


def test_bad_options_are_listed_together(tmp_path: Path) -> None:
    """from_options: every problem is reported in one SettingsError."""
    with pytest.raises(SettingsError) as caught:
        HttpPushAdapter.from_options(
            {
                "url": "ftp://nsw.example",
                "timeout_seconds": "-1",
                "breaker_failures": "2.5",
                "breaker_reset_seconds": "soon",
                "client_key": str(tmp_path / "missing.pem"),
                "colour": "blue",
            }
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "colour: unknown option",
        "url:",
        "timeout_seconds:",
        "breaker_failures:",
        "breaker_reset_seconds:",
        "client_key: given without client_cert",
        "not a readable file",
    ):
        assert expected in problems


def test_certificates_need_https(pki: Pki) -> None:
    """from_options: client certificate options on an http:// URL are a configuration error."""
    with pytest.raises(SettingsError, match="https"):
        HttpPushAdapter.from_options(
            {"url": "http://nsw.example/in", "client_cert": str(pki.client_cert)}
        )


def test_credentials_in_the_url_stay_out_of_details() -> None:
    """from_options: user:password in the URL never appears in details or logs."""
    adapter = HttpPushAdapter.from_options({"url": "https://gw:s3cret@nsw.example/in"})
    assert adapter.display_url == "https://nsw.example/in"


async def test_close_is_idempotent_and_session_is_lazy() -> None:
    """close: safe before any delivery and twice in a row; no session exists before use."""
    adapter = HttpPushAdapter("http://127.0.0.1:9/documents")
    assert adapter._session is None
    await adapter.close()
    await adapter.close()
    assert adapter._session is None


async def test_line_break_in_a_header_value_is_refused_for_good(make_adapter: MakeAdapter) -> None:
    """header injection: a message id with a line break is a permanent failure, never sent."""
    handover = _handover()
    broken = Handover(
        message_id=handover.message_id + "\r\nX-Evil: 1",
        sender="SG",
        receiver="TH",
        document_type="EFD",
        payload=handover.payload,
    )
    with pytest.raises(PermanentDeliveryFailure, match="line break"):
        await make_adapter("http://127.0.0.1:9/documents").deliver(broken)


async def test_status_query_tells_what_the_nsw_already_holds(start_nsw: StartNsw) -> None:
    """has_received is True for a delivered id, False for an unknown one, None without a URL."""
    nsw = await start_nsw()
    asking = HttpPushAdapter.from_options(
        {"url": nsw.documents_url, "status_url": f"{nsw.url}/documents/{{message_id}}"}
    )
    silent = HttpPushAdapter(nsw.documents_url)
    try:
        handover = _handover()
        assert await asking.has_received(handover.message_id) is False
        await asking.deliver(handover)
        assert await asking.has_received(handover.message_id) is True
        assert await silent.has_received(handover.message_id) is None
    finally:
        await asking.close()
        await silent.close()


def test_status_url_must_name_the_message_id() -> None:
    """A status URL without {message_id} is a settings error."""
    with pytest.raises(SettingsError, match="status_url"):
        HttpPushAdapter.from_options(
            {"url": "http://127.0.0.1:9/documents", "status_url": "http://127.0.0.1:9/x"}
        )
