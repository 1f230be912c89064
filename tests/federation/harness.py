"""Start wired gateways in-process for the auth, inbox and federation tests."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.auth import key_digest
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import PartySettings, Settings
from tests.conftest import delete_topology, make_settings

KEYS = {cc: f"test-key-{cc.lower()}-{uuid.uuid4().hex}" for cc in MEMBER_STATES}
"""One API key per member state for this test run."""
OPERATOR_KEY = f"test-operator-{uuid.uuid4().hex}"


def hub_settings(
    tmp_path: Path,
    amqp_url: str,
    pki_dir: Path,
    *,
    http: Mapping[str, Any] | None = None,
    parties: Mapping[str, PartySettings] | None = None,
    keys: bool = True,
) -> Settings:
    """The conftest hub (ten drop folders) with API keys, ``http`` overrides and parties."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    base = make_settings(tmp_path, amqp_url, f"test-{uuid.uuid4().hex[:8]}", pki_dir)
    merged = dict(base.parties)
    merged.update(parties or {})
    if keys:
        merged = {
            cc: replace(party, api_key_sha256=(key_digest(KEYS[cc]),))
            for cc, party in merged.items()
        }
    return replace(
        base,
        http=replace(
            base.http, operator_api_key_sha256=key_digest(OPERATOR_KEY), **dict(http or {})
        ),
        parties=merged,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Gateway]:
    """A running gateway on port 0, its topology removed afterwards."""
    gateway = Gateway(settings)
    await gateway.start(port=0)
    try:
        assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
        yield gateway
    finally:
        await gateway.stop()
        await delete_topology(
            settings.amqp.url,
            Topology(settings.amqp.prefix),
            tuple(settings.parties),
            gateway.broker.retry_delays_ms,
        )


def client_tls(pki_dir: Path, *, server: str, client: str | None) -> ssl.SSLContext:
    """A client TLS context trusting ``server``'s CA, presenting ``client``'s certificate.

    ``client`` is a country (its ``tls.pem``), a ``bad/<name>`` stem, or None.
    """
    context = ssl.create_default_context(cafile=str(pki_dir / server / "ca.pem"))
    if client is not None:
        stem = pki_dir / client if "/" in client else pki_dir / client / "tls"
        context.load_cert_chain(f"{stem}.pem", f"{stem}.key")
    return context


def server_name(country: str) -> str:
    """The DNS name in a development gateway certificate of ``country``."""
    return f"gateway.{country.lower()}.asw.test"
