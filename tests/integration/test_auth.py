"""Caller authentication against a real gateway: API keys, TLS client certificates, operators."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from asw_toolkit.cli.send import ApiKeyError, api_key_from
from gateway.app import Gateway
from gateway.auth import (
    Authenticator,
    auth_middleware,
    key_digest,
    path_kind,
    server_ssl_context,
)
from gateway.errors import SettingsError, Unauthenticated
from gateway.settings import AuthMode, HttpSettings, PartySettings, Settings, load_settings
from tests.conftest import SAMPLES, with_message_id
from tests.federation.harness import (
    KEYS,
    OPERATOR_KEY,
    client_tls,
    hub_settings,
    running,
    server_name,
)
from tests.pki_fixtures import PkiBundle

MY_FORMD = SAMPLES / "formd" / "valid" / "my-kh-rvc-fob.xml"


async def post(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    host: str | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST an XML document; return status, JSON body and headers."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/v1/messages",
            data=body,
            headers={"Content-Type": "application/xml", **(headers or {})},
            ssl=tls if tls is not None else True,
            server_hostname=host,
        ) as response,
    ):
        return response.status, await response.json(content_type=None), dict(response.headers)


async def get(
    url: str, path: str, *, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """GET a JSON endpoint."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + path, headers=headers or {}) as response,
    ):
        return response.status, await response.json(content_type=None)


def base_url(gateway: Gateway, scheme: str = "http") -> str:
    """Where the gateway listens."""
    return f"{scheme}://127.0.0.1:{gateway.port}"


# --- API keys -------------------------------------------------------------------------------


@pytest.fixture
async def api_key_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Any:
    """A gateway with ``http.auth = "api-key"`` and a key per party."""
    settings = hub_settings(tmp_path, amqp_url, rsa_pki.directory, http={"auth": "api-key"})
    async with running(settings) as gateway:
        yield gateway


async def test_right_api_key_is_accepted(api_key_gateway: Gateway, sample_formd: bytes) -> None:
    """SG's key in X-API-Key submits SG's document: 202."""
    status, body, _ = await post(
        base_url(api_key_gateway),
        with_message_id(sample_formd),
        headers={"X-API-Key": KEYS["SG"]},
    )
    assert status == 202, body
    assert body["sender"] == "SG"


async def test_bearer_token_is_accepted(api_key_gateway: Gateway, sample_formd: bytes) -> None:
    """The key also works as ``Authorization: Bearer``."""
    status, body, _ = await post(
        base_url(api_key_gateway),
        with_message_id(sample_formd),
        headers={"Authorization": f"Bearer {KEYS['SG']}"},
    )
    assert status == 202, body


async def test_a_party_sees_only_its_own_messages(
    api_key_gateway: Gateway, sample_formd: bytes
) -> None:
    """SG and TH see the SG -> TH message; MY sees neither it, its document nor its listing."""
    url = base_url(api_key_gateway)
    status, body, _ = await post(
        url, with_message_id(sample_formd), headers={"X-API-Key": KEYS["SG"]}
    )
    assert status == 202, body
    message_id = body["message_id"]
    for party in ("SG", "TH"):
        status, view = await get(
            url, f"/v1/messages/{message_id}", headers={"X-API-Key": KEYS[party]}
        )
        assert status == 200, (party, view)
        _, listing = await get(url, "/v1/messages", headers={"X-API-Key": KEYS[party]})
        assert message_id in {m["message_id"] for m in listing["messages"]}, party
    headers = {"X-API-Key": KEYS["MY"]}
    status, problem = await get(url, f"/v1/messages/{message_id}", headers=headers)
    assert (status, problem["code"]) == (404, "not-found")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/messages/{message_id}/document", headers=headers) as response,
    ):
        assert response.status == 404
    status, problem = await get(url, "/v1/messages?sender=SG", headers=headers)
    assert (status, problem["code"], problem["parameter"]) == (403, "parameter-forbidden", "sender")
    _, listing = await get(url, "/v1/messages?sender=SG&receiver=MY", headers=headers)
    assert message_id not in {m["message_id"] for m in listing["messages"]}
    status, problem = await get(url, "/v1/refusals?sender=SG", headers=headers)
    assert (status, problem["code"]) == (403, "parameter-forbidden")
    status, own = await get(url, "/v1/refusals", headers=headers)
    assert (status, own["refusals"]) == (200, [])


async def test_wrong_api_key_is_401(api_key_gateway: Gateway, sample_formd: bytes) -> None:
    """An unknown key is refused with 401 unauthenticated and a challenge."""
    status, body, headers = await post(
        base_url(api_key_gateway), sample_formd, headers={"X-API-Key": "not-a-key"}
    )
    assert status == 401
    assert body["code"] == "unauthenticated"
    assert "Bearer" in headers.get("WWW-Authenticate", "")


async def test_missing_api_key_is_401(api_key_gateway: Gateway, sample_formd: bytes) -> None:
    """No credentials at all: 401."""
    status, body, _ = await post(base_url(api_key_gateway), sample_formd)
    assert status == 401
    assert body["code"] == "unauthenticated"


async def test_sg_key_cannot_send_as_my(api_key_gateway: Gateway) -> None:
    """SG's key on a document whose sender is MY: 403 sender-not-allowed."""
    status, body, _ = await post(
        base_url(api_key_gateway), MY_FORMD.read_bytes(), headers={"X-API-Key": KEYS["SG"]}
    )
    assert status == 403, body
    assert body["code"] == "sender-not-allowed"


async def test_health_stays_open(api_key_gateway: Gateway) -> None:
    """/healthz and /readyz need no credentials."""
    assert (await get(base_url(api_key_gateway), "/healthz"))[0] == 200
    assert (await get(base_url(api_key_gateway), "/readyz"))[0] == 200


async def test_operator_endpoint_needs_operator_key(api_key_gateway: Gateway) -> None:
    """/v1/queues: no key and a party's key are 401; the operator's key is 200."""
    url = base_url(api_key_gateway)
    assert (await get(url, "/v1/queues"))[0] == 401
    assert (await get(url, "/v1/queues", headers={"X-API-Key": KEYS["SG"]}))[0] == 401
    status, body = await get(url, "/v1/queues", headers={"X-API-Key": OPERATOR_KEY})
    assert status == 200, body


async def test_operator_key_reads_but_cannot_submit(
    api_key_gateway: Gateway, sample_formd: bytes
) -> None:
    """The operator key may list messages but not submit documents."""
    url = base_url(api_key_gateway)
    assert (await get(url, "/v1/messages", headers={"X-API-Key": OPERATOR_KEY}))[0] == 200
    status, body, _ = await post(url, sample_formd, headers={"X-API-Key": OPERATOR_KEY})
    assert status == 401, body


# --- TLS client certificates ----------------------------------------------------------------


@pytest.fixture
async def tls_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Any:
    """A gateway serving HTTPS with SG's TLS certificate and ``auth = "api-key-or-tls"``."""
    pki = rsa_pki.directory
    settings = hub_settings(
        tmp_path,
        amqp_url,
        pki,
        http={
            "auth": "api-key-or-tls",
            "tls_cert": str(pki / "SG" / "tls.pem"),
            "tls_key": str(pki / "SG" / "tls.key"),
        },
    )
    async with running(settings) as gateway:
        yield gateway


async def tls_post(
    gateway: Gateway, pki: Path, client: str | None, body: bytes, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """POST over HTTPS to the SG-certified gateway, presenting ``client``'s certificate."""
    status, answer, _ = await post(
        base_url(gateway, "https"),
        body,
        tls=client_tls(pki, server="SG", client=client),
        host=server_name("SG"),
        **kwargs,
    )
    return status, answer


async def test_sg_client_certificate_is_accepted(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """SG's TLS certificate authenticates SG: its Form D is accepted (202)."""
    status, body = await tls_post(
        tls_gateway, rsa_pki.directory, "SG", with_message_id(sample_formd)
    )
    assert status == 202, body


async def test_my_certificate_cannot_send_as_sg(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """MY's certificate on SG's document: 403 sender-not-allowed."""
    status, body = await tls_post(
        tls_gateway, rsa_pki.directory, "MY", with_message_id(sample_formd)
    )
    assert status == 403, body
    assert body["code"] == "sender-not-allowed"


async def test_revoked_certificate_is_401(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """A certificate that chains to SG's CA but is on its CRL: 401 naming the revocation."""
    status, body = await tls_post(tls_gateway, rsa_pki.directory, "bad/revoked", sample_formd)
    assert status == 401, body
    assert "revoked" in body["detail"]


async def test_unknown_ca_certificate_fails_the_handshake(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """A certificate from a CA nobody configured never gets past TLS."""
    with pytest.raises(aiohttp.ClientError):
        await tls_post(tls_gateway, rsa_pki.directory, "bad/unknown-ca", sample_formd)


async def test_no_certificate_falls_back_to_api_key(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """Over HTTPS without a certificate, SG's API key still works; nothing at all is 401."""
    status, body = await tls_post(
        tls_gateway,
        rsa_pki.directory,
        None,
        with_message_id(sample_formd),
        headers={"X-API-Key": KEYS["SG"]},
    )
    assert status == 202, body
    status, body = await tls_post(tls_gateway, rsa_pki.directory, None, sample_formd)
    assert status == 401, body


async def test_key_and_certificate_of_different_parties_is_401(
    tls_gateway: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """SG's certificate with MY's key: the credentials disagree, 401."""
    status, body = await tls_post(
        tls_gateway, rsa_pki.directory, "SG", sample_formd, headers={"X-API-Key": KEYS["MY"]}
    )
    assert status == 401, body


# --- the decision table, without a server ---------------------------------------------------


def _authenticator(mode: AuthMode) -> Authenticator:
    """An authenticator over SG with one key and an operator key."""
    settings = Settings(
        http=HttpSettings(auth=mode, operator_api_key_sha256=key_digest("op")),
        parties={
            "SG": PartySettings(
                country="SG", adapter="drop-folder", api_key_sha256=(key_digest("sg"),)
            )
        },
    )
    return Authenticator(settings)


def test_path_kinds() -> None:
    """Health and console are open, ops endpoints operator-only, the rest for parties."""
    assert path_kind("/healthz") == path_kind("/console/x") == "open"
    assert path_kind("/v1/dead-letters/x/replay") == path_kind("/v1/dead-letters") == "operator"
    assert path_kind("/v1/queues") == path_kind("/v1/partners") == "operator"
    assert path_kind("/v1/deadlines") == "operator"
    assert path_kind("/v1/messages") == path_kind("/v1/inbox/x") == "party"
    assert path_kind("/consoleX") == "party"


def test_none_mode_lets_everyone_in_without_a_caller() -> None:
    """Development mode: no caller, every path open."""
    principal = _authenticator("none").authenticate(
        path="/v1/dead-letters/x/replay", method="POST", key=None, cert=None
    )
    assert principal.party is None
    assert principal.operator


def test_key_principal_carries_no_key() -> None:
    """The principal names the party and a digest prefix, never the key."""
    principal = _authenticator("api-key").authenticate(
        path="/v1/messages", method="POST", key="sg", cert=None
    )
    assert principal.party == "SG"
    assert principal.key_id == key_digest("sg")[:12]
    assert "sg" not in repr(principal).replace("SG", "")


def test_tls_mode_refuses_party_keys() -> None:
    """In ``tls`` mode a party's API key is not enough."""
    with pytest.raises(Unauthenticated, match="certificates"):
        _authenticator("tls").authenticate(path="/v1/messages", method="POST", key="sg", cert=None)


def test_server_context_asks_for_client_certificates(rsa_pki: PkiBundle) -> None:
    """HTTPS serving asks for (but does not require) client certificates."""
    pki = rsa_pki.directory
    context = server_ssl_context(
        HttpSettings(
            auth="tls",
            tls_cert=str(pki / "SG" / "tls.pem"),
            tls_key=str(pki / "SG" / "tls.key"),
        ),
        trust_dir=pki,
    )
    assert context is not None
    assert context.verify_mode is ssl.CERT_OPTIONAL
    assert server_ssl_context(HttpSettings()) is None


# --- defaults: authentication is on unless switched off, and never off in public -----------

ROOT = Path(__file__).resolve().parents[2]


def test_default_auth_is_api_key() -> None:
    """Without a setting, the shipped configuration and the image, callers need an API key."""
    assert HttpSettings().auth == "api-key"
    assert load_settings(ROOT / "config" / "gateway.toml", {}).http.auth == "api-key"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ASW_HTTP__AUTH=api-key" in dockerfile
    assert "AUTH=none" not in dockerfile and 'auth = "none"' not in dockerfile


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "gateway.example", ""])  # noqa: S104
def test_auth_none_is_refused_on_a_public_address(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle, host: str
) -> None:
    """``http.auth = "none"`` with a non-loopback host stops the gateway at start, saying why."""
    settings = hub_settings(tmp_path, amqp_url, rsa_pki.directory, http={"auth": "none"})
    settings = replace(settings, http=replace(settings.http, host=host))
    with pytest.raises(SettingsError, match="loopback"):
        Gateway(settings)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_auth_none_on_loopback_starts_with_a_warning(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle, host: str
) -> None:
    """On a loopback address ``none`` is allowed, and the start says authentication is off."""
    settings = hub_settings(tmp_path, amqp_url, rsa_pki.directory, http={"auth": "none"})
    settings = replace(settings, http=replace(settings.http, host=host))
    with structlog.testing.capture_logs() as logs:
        Gateway(settings)  # the check at start lets it through
        auth_middleware(settings)  # what the app is built with
    assert any(line["event"] == "auth_disabled" for line in logs), logs


# --- the tester CLI takes its key from the environment or a file ----------------------------


async def _send(gateway: Gateway, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asw_toolkit",
        "send",
        str(SAMPLES / "formd" / "valid" / "sg-th-basic.xml"),
        "--new-id",
        "--url",
        base_url(gateway),
        *args,
        env={**{k: v for k, v in os.environ.items() if k != "ASW_API_KEY"}, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_send_takes_the_key_from_environment_or_file(
    api_key_gateway: Gateway, tmp_path: Path
) -> None:
    """``send`` authenticates with ASW_API_KEY or --api-key-file; a wrong key is refused."""
    code, out, err = await _send(api_key_gateway, env={"ASW_API_KEY": KEYS["SG"]})
    assert code == 0, err
    assert re.fullmatch(r"[0-9a-f-]{36}\n", out)
    key_file = tmp_path / "sg.key"
    key_file.write_text(KEYS["SG"] + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    code, out, err = await _send(
        api_key_gateway, "--api-key-file", str(key_file), env={"ASW_API_KEY": "wrong"}
    )
    assert code == 0, err
    code, _, err = await _send(api_key_gateway, env={"ASW_API_KEY": "wrong"})
    assert code == 1 and "unauthenticated" in err
    code, _, err = await _send(api_key_gateway, "--api-key-file", str(tmp_path / "none"), env={})
    assert code == 2 and "cannot read the API key file" in err


def test_api_key_precedence(tmp_path: Path) -> None:
    """The key file wins over --api-key, which wins over ASW_API_KEY; an empty file is an error."""
    key_file = tmp_path / "key"
    key_file.write_text(" from-file \n", encoding="utf-8")
    args = argparse.Namespace(api_key_file=key_file, api_key="from-argv")
    assert api_key_from(args, {"ASW_API_KEY": "from-env"}) == "from-file"
    args = argparse.Namespace(api_key_file=None, api_key="from-argv")
    assert api_key_from(args, {"ASW_API_KEY": "from-env"}) == "from-argv"
    args = argparse.Namespace(api_key_file=None, api_key=None)
    assert api_key_from(args, {"ASW_API_KEY": "from-env"}) == "from-env"
    assert api_key_from(args, {}) is None
    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ApiKeyError, match="empty"):
        api_key_from(argparse.Namespace(api_key_file=key_file, api_key=None), {})
