"""Attacks on the HTTP shell, each performed against a real running gateway (issue 12, 7 and 8).

Bad headers and query values, silent and slow connections, a slow body, one caller hogging a
worker, a stored document rendered as a page, secrets in logs: each is tried for real and must
be refused with its stable code, never answered 500, never able to stop the health check or an
honest party's delivery.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from asw_toolkit.processes import GatewayProcess
from gateway.app import Gateway
from gateway.auth import key_digest
from gateway.errors import Busy
from gateway.logs import configure_logging
from gateway.offload import RequestPool
from gateway.settings import LogSettings
from tests.conftest import SAMPLES, with_message_id
from tests.federation.harness import KEYS, hub_settings, running
from tests.integration.helpers import wait_for_file
from tests.pki_fixtures import PkiBundle

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def raw_request(
    port: int, request: bytes, *, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` bytes as they are; return status, headers (lower-case) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            body = await (reader.readexactly(int(length)) if length else reader.read())
    finally:
        writer.close()
    return int(lines[0].split(" ")[1]), headers, body


def get_request(path: str, *extra: bytes) -> bytes:
    """A GET with ``Connection: close`` and the given extra header lines."""
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: gateway", *extra, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def problem_code(headers: dict[str, str], body: bytes) -> str | None:
    """The ``code`` of a problem+json answer (None for any other answer)."""
    if not headers.get("content-type", "").startswith("application/problem+json"):
        return None
    code: str = json.loads(body)["code"]
    return code


# --- headers and query parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"a" * 256, b"\xff\xfe\xfd-not-utf-8", b"tab\tinside", b"with space", "caf\u00e9".encode()],
    ids=["256-bytes", "invalid-utf8", "tab", "space", "non-ascii"],
)
async def test_unusable_correlation_id_is_400(running_gateway: Gateway, value: bytes) -> None:
    """An X-Correlation-ID over 255 bytes, not UTF-8 or with odd characters gets 400, not 500."""
    status, headers, body = await raw_request(
        running_gateway.port or 0, get_request("/v1/messages", b"X-Correlation-ID: " + value)
    )
    assert status == 400, body
    assert problem_code(headers, body) == "parameter-invalid"
    assert UUID.fullmatch(headers["x-correlation-id"]), "a fresh id replaces the unusable one"


async def test_usable_correlation_id_is_echoed(running_gateway: Gateway) -> None:
    """A 255-character printable correlation id is accepted and echoed unchanged."""
    given = "c" * 255
    status, headers, _ = await raw_request(
        running_gateway.port or 0,
        get_request("/v1/messages", b"X-Correlation-ID: " + given.encode()),
    )
    assert status == 200
    assert headers["x-correlation-id"] == given


BAD_QUERIES = [
    "/v1/messages?before=9999-12-31T23:59:59-14:00",
    "/v1/messages?before=0001-01-01T00:00:00%2B14:00",
    "/v1/messages?before=yesterday",
    "/v1/messages?limit=0",
    "/v1/messages?limit=99999999999999999999",
    "/v1/messages?limit=1e3",
    "/v1/messages?limit=%EF%BC%95",  # a full-width digit five
    "/v1/messages?state=LOST",
    "/v1/messages?test=maybe",
    "/v1/messages?sender=ZZ",
    "/v1/messages?sender=sg",  # lower case is refused, never guessed at
    "/v1/messages?until=2026-03-01T00:00:00&since=2026-03-02T00:00:00",
    "/v1/messages?cursor=not-a-cursor",
    "/v1/messages?code=Schema%20Violation",
    "/v1/messages?document_type=XYZ",
    "/v1/refusals?sender=XX",
    "/v1/refusals?state=delivered",
    "/v1/dead-letters?reason=%00",
    "/v1/messages?receiver=%00",
    "/v1/certificates?within_days=1000000000",
    "/v1/certificates?within_days=-1",
    "/v1/dead-letters?limit=-5",
    "/v1/stats?test=perhaps",
]


@pytest.mark.parametrize("path", BAD_QUERIES)
async def test_bad_query_value_is_400(running_gateway: Gateway, path: str) -> None:
    """Each out-of-range or malformed query value gets 400 parameter-invalid naming it."""
    status, headers, body = await raw_request(running_gateway.port or 0, get_request(path))
    assert status == 400, body
    assert problem_code(headers, body) == "parameter-invalid"
    assert json.loads(body)["parameter"] == path.split("?")[1].split("=", maxsplit=1)[0]


async def test_good_query_values_are_accepted(running_gateway: Gateway) -> None:
    """In-range values of the same parameters are answered 200."""
    for path in (
        "/v1/messages?before=2026-03-01T12:00:00%2B07:00&limit=5&state=delivered&test=false",
        "/v1/messages?sender=SG&receiver=TH",
        "/v1/messages?document_id=SG-1&document_type=EFD&code=schema-violation&format=csv",
        "/v1/refusals?sender=SG&code=schema-violation&since=2026-01-01T00:00:00Z",
        "/v1/dead-letters?receiver=TH&reason=retries-exhausted",
        "/v1/certificates?within_days=36500",
        "/v1/dead-letters?limit=1000",  # more than the most: the most
        "/v1/stats?test=true",
    ):
        status, _, body = await raw_request(running_gateway.port or 0, get_request(path))
        assert status == 200, (path, body)


async def test_message_id_that_is_no_uuid_is_404(running_gateway: Gateway) -> None:
    """A path id that is not a UUID (NUL, huge, quotes) is simply not found."""
    for message_id in ("%00", "x" * 5000, "'%20OR%201=1--"):
        status, headers, body = await raw_request(
            running_gateway.port or 0, get_request(f"/v1/messages/{message_id}/document")
        )
        assert status == 404, body
        assert problem_code(headers, body) == "not-found"


# --- the stored document --------------------------------------------------------------------


async def test_stored_document_is_a_sandboxed_download(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """GET .../document answers with CSP sandbox, nosniff and Content-Disposition attachment."""
    url = f"http://127.0.0.1:{running_gateway.port}"
    document = with_message_id(sample_formd)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url + "/v1/messages", data=document, headers={"Content-Type": "application/xml"}
        ) as response:
            assert response.status == 202, await response.text()
            message_id = (await response.json())["message_id"]
        async with session.get(f"{url}/v1/messages/{message_id}/document") as response:
            assert response.status == 200
            assert message_id.encode() in await response.read()  # signed by the gateway
            headers = response.headers
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == f'attachment; filename="{message_id}.xml"'


# --- connections ----------------------------------------------------------------------------


@pytest.fixture
async def tight_gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A gateway with API keys, 100 connections, 2 s header and body timeouts, 3 per caller."""
    settings = hub_settings(
        tmp_path,
        amqp_url,
        rsa_pki.directory,
        http={
            "auth": "api-key",
            "max_connections": 100,
            "header_timeout_seconds": 2.0,
            "body_timeout_seconds": 2.0,
            "per_caller_concurrency": 3,
        },
    )
    async with running(settings) as gateway:
        yield gateway


async def test_silent_connections_leave_health_answering(tight_gateway: Gateway) -> None:
    """300 silent connections: /healthz answers at once, others get 503, all closed by timeout."""
    port = tight_gateway.port or 0
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(300)]
    try:
        await asyncio.sleep(0.2)
        started = time.monotonic()
        status, _, body = await raw_request(port, get_request("/healthz"), timeout=5)
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"
        assert time.monotonic() - started < 3
        status, headers, body = await raw_request(port, get_request("/v1/messages"), timeout=5)
        assert status == 503, body
        assert problem_code(headers, body) == "busy"
        assert headers["retry-after"].isdigit()

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                await asyncio.wait_for(reader.read(), 2.0 + 4.0)
            except TimeoutError:
                return False
            return True

        results = await asyncio.gather(*(closed(reader) for reader, _ in silent))
        assert all(results), f"{results.count(False)} silent connections still open"
    finally:
        for _, writer in silent:
            writer.close()
    await asyncio.sleep(0.5)
    status, _, _ = await raw_request(
        port, get_request("/v1/messages", f"X-API-Key: {KEYS['SG']}".encode())
    )
    assert status == 200, "the gateway serves again once the silent connections are gone"


async def test_dripping_headers_are_cut_off(tight_gateway: Gateway) -> None:
    """A client sending one header line every 0.5 s is disconnected after the header timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", tight_gateway.port)
    started = time.monotonic()
    writer.write(b"GET /v1/messages HTTP/1.1\r\nHost: gateway\r\n")
    try:
        for index in range(40):
            await asyncio.sleep(0.5)
            if reader.at_eof() or writer.is_closing():
                break
            writer.write(f"X-Drip-{index}: x\r\n".encode())
            await writer.drain()
            with_eof = await _eof_within(reader, 0.01)
            if with_eof:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()
    assert time.monotonic() - started < 2.0 + 3.0, "the slow-header connection stayed open"


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), seconds)
    except TimeoutError:
        return False
    return data == b"" or reader.at_eof()


async def test_slow_body_gets_408(tight_gateway: Gateway) -> None:
    """A body that stops arriving gets 408 request-timeout after the body timeout."""
    key = KEYS["SG"].encode()
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/xml\r\n"
        b"X-API-Key: " + key + b"\r\nContent-Length: 5000\r\n\r\n<doc>"
    )
    started = time.monotonic()
    status, headers, body = await raw_request(tight_gateway.port or 0, request, timeout=10)
    assert status == 408, body
    assert problem_code(headers, body) == "request-timeout"
    assert 1.5 < time.monotonic() - started < 6


# --- one caller cannot take the worker ------------------------------------------------------


async def test_one_caller_gets_503_beyond_its_share_and_others_still_deliver(
    tight_gateway: Gateway, sample_formd: bytes
) -> None:
    """MY holds 3 slow submissions; its 4th-8th get 503 busy, SG's document is still delivered."""
    port = tight_gateway.port or 0
    key = KEYS["MY"].encode()
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/xml\r\n"
        b"X-API-Key: " + key + b"\r\nContent-Length: 100000\r\n\r\n<doc>"
    )
    holding = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        holding.append((reader, writer))
    await asyncio.sleep(0.3)
    try:
        started = time.monotonic()
        excess = await asyncio.gather(*(raw_request(port, head, timeout=5) for _ in range(5)))
        assert time.monotonic() - started < 1.5, "the excess must be refused at once"
        for status, headers, body in excess:
            assert status == 503, body
            assert problem_code(headers, body) == "busy"
            assert headers["retry-after"] == "1"
        document = with_message_id(sample_formd)
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/v1/messages",
                data=document,
                headers={"Content-Type": "application/xml", "X-API-Key": KEYS["SG"]},
            ) as response,
        ):
            assert response.status == 202, await response.text()
            message_id = (await response.json())["message_id"]
        target = Path(tight_gateway.settings.parties["TH"].options["directory"])
        assert await wait_for_file(target / f"{message_id}.xml", timeout=5)
        assert time.monotonic() - started < 5
    finally:
        for _, writer in holding:
            writer.close()


LARGE = SAMPLES / "formd" / "valid" / "sg-vn-large-1mb.xml"
HONEST = SAMPLES / "formd" / "valid" / "my-kh-rvc-fob.xml"


def fresh(path: Path, message_id: str, document_id: bytes) -> bytes:
    """A sample with a new message id (and Form D number, when given)."""
    data = path.read_bytes()
    old_id = re.search(rb"<cm:MessageID>([^<]+)</cm:MessageID>", data)
    assert old_id is not None
    data = data.replace(old_id.group(1), message_id.encode())
    return data.replace(b"KL-2026-D-0458812", document_id) if document_id else data


async def test_flood_of_large_documents_does_not_hold_up_another_party(
    tight_gateway: Gateway,
) -> None:
    """SG floods 1 MB documents 12 at a time: the excess gets 503, MY's document still arrives."""
    url = f"http://127.0.0.1:{tight_gateway.port}/v1/messages"
    statuses: list[tuple[int, str | None]] = []
    honest_done = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> None:
        body = fresh(LARGE, str(uuid.uuid4()), b"")
        headers = {"Content-Type": "application/xml", "X-API-Key": KEYS["SG"]}
        async with session.post(url, data=body, headers=headers) as response:
            statuses.append((response.status, response.headers.get("Retry-After")))

    async def flood(session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 15
        while not honest_done.is_set() and time.monotonic() < deadline:
            await asyncio.gather(*(one(session) for _ in range(12)))

    async with aiohttp.ClientSession() as session:
        flooding = asyncio.create_task(flood(session))
        await asyncio.sleep(0.5)
        message_id = str(uuid.uuid4())
        started = time.monotonic()
        async with session.post(
            url,
            data=fresh(HONEST, message_id, f"KL-{message_id[:8]}".encode()),
            headers={"Content-Type": "application/xml", "X-API-Key": KEYS["MY"]},
        ) as response:
            assert response.status == 202, await response.text()
        target = Path(tight_gateway.settings.parties["KH"].options["directory"])
        delivered = await wait_for_file(target / f"{message_id}.xml", timeout=10)
        honest_seconds = time.monotonic() - started
        honest_done.set()
        await flooding
    assert delivered, "MY's document was not delivered during the flood"
    assert honest_seconds < 5, f"MY's document took {honest_seconds:.1f} s during the flood"
    busy = [s for s in statuses if s[0] == 503]
    assert busy, "one caller's excess must be refused"
    assert all(retry == "1" for _, retry in busy)
    assert all(status in (202, 409, 503) for status, _ in statuses), statuses


def test_request_pool_full_answers_busy() -> None:
    """With its thread busy and no queue left, the request pool refuses more work with Busy."""
    release = threading.Event()

    async def scenario() -> None:
        pool = RequestPool(threads=1, queue=1)
        try:
            first = asyncio.ensure_future(pool.run(lambda: release.wait(10)))
            second = asyncio.ensure_future(pool.run(lambda: release.wait(10)))
            await asyncio.sleep(0.05)
            with pytest.raises(Busy):
                await pool.run(lambda: True)
            release.set()
            assert await first and await second
            assert await pool.run(lambda: 7) == 7
        finally:
            release.set()
            pool.close()

    asyncio.run(scenario())


# --- secrets and files ----------------------------------------------------------------------


def test_tracebacks_are_logged_without_locals() -> None:
    """A traceback logged by the gateway or by aiohttp's logger carries frames but no locals."""
    secret = f"api-key-{uuid.uuid4().hex}"
    stream = io.StringIO()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def handler_with_secret(api_key: str) -> None:
        raise ConnectionResetError("the client went away")

    try:
        configure_logging(LogSettings(format="json"), stream=stream)
        try:
            handler_with_secret(secret)
        except ConnectionResetError:
            structlog.get_logger("gateway.test").exception("request_failed")
            logging.getLogger("aiohttp.server").exception("Error handling request")
    finally:
        structlog.configure(**saved_config)
        root.handlers[:], root.level = saved_handlers, saved_level
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    for line in lines:
        frames = line["exception"][0]["frames"]
        assert any(f["name"] == "handler_with_secret" for f in frames)
        assert all("locals" not in f for f in frames)
    assert secret not in stream.getvalue()


def test_client_disconnect_leaves_no_key_in_the_log(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> None:
    """A caller that hangs up mid-body: the gateway's log never shows its API key."""
    key = f"key-{uuid.uuid4().hex}"
    process = GatewayProcess(
        tmp_path,
        amqp_url,
        rsa_pki.directory,
        parties_config={
            "SG": (
                f'adapter = "drop-folder"\nsign_on_behalf = true\n'
                f'api_key_sha256 = ["{key_digest(key)}"]\n'
                f'options = {{ directory = "{tmp_path / "nsw" / "SG" / "inbox"}" }}\n'
            )
        },
    )
    process.write_config()
    config = process.config_path.read_text()
    process.config_path.write_text(config.replace('auth = "none"', 'auth = "api-key"'))
    process.start()
    try:

        async def hang_up() -> None:
            for _ in range(3):
                _, writer = await asyncio.open_connection("127.0.0.1", process.port)
                writer.write(
                    b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\n"
                    b"Content-Type: application/xml\r\nX-API-Key: " + key.encode() + b"\r\n"
                    b"Content-Length: 100000\r\n\r\n<doc>"
                )
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.transport.abort()
            await asyncio.sleep(1.0)

        asyncio.run(hang_up())
    finally:
        process.stop()
    log = (tmp_path / "gateway.log").read_text(errors="replace")
    assert "client_disconnected" in log
    assert key not in log
    assert key_digest(key)[:12] in log, "the key is identified by its digest prefix only"


async def test_journal_file_is_private(running_gateway: Gateway) -> None:
    """The SQLite journal (and its WAL) are readable and writable by the gateway's user only."""
    journal = Path(running_gateway.settings.journal.url.removeprefix("sqlite://"))
    for path in (journal, journal.with_name(journal.name + "-wal")):
        if path.exists():
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode == 0o600, f"{path.name} has mode {mode:o}"
    assert journal.exists()
