"""The remote-gateway adapter against a real second gateway (HTTP API, RabbitMQ, journal)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.remote_gateway import RemoteGatewayAdapter, RemoteGatewayOptions
from asw_toolkit.processes import free_port
from gateway.app import Gateway
from gateway.core.handover import Handover
from gateway.errors import PeerUnavailable, PermanentDeliveryFailure, SettingsError
from tests.conftest import SAMPLE_DOCUMENT_ID, SAMPLE_MESSAGE_ID, with_message_id
from tests.federation.harness import KEYS, hub_settings, running
from tests.pki_fixtures import PkiBundle

PIN = {"receipt_signer_subject": "CN=TH ASW Gateway Receipts (DEV),O=TH ASW Gateway (DEV),C=TH"}
"""The remote gateway's receipt signer (these tests send no receipt through the adapter)."""


@pytest.fixture
async def remote(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Any:
    """TH's gateway: API keys required; SG must sign its own documents."""
    settings = hub_settings(tmp_path / "th", amqp_url, rsa_pki.directory, http={"auth": "api-key"})
    settings = replace(
        settings,
        parties={
            **settings.parties,
            "SG": replace(settings.parties["SG"], sign_on_behalf=False),
        },
    )
    async with running(settings) as gateway:
        yield gateway


@pytest.fixture
async def adapter(remote: Gateway) -> Any:
    """SG's side: a remote-gateway adapter pointing at TH's gateway with SG's key."""
    built = RemoteGatewayAdapter.from_options(
        {
            "url": f"http://127.0.0.1:{remote.port}",
            "api_key": KEYS["SG"],
            "timeout_seconds": "5",
            **PIN,
        }
    )
    yield built
    await built.close()


def handover(pki: PkiBundle, message_id: str, document: bytes) -> Handover:
    """SG's signed Form D to TH."""
    return Handover(
        message_id=message_id,
        sender="SG",
        receiver="TH",
        document_type="EFD",
        payload=pki.signed("SG", document),
    )


def th_inbox(remote: Gateway) -> Path:
    """Where TH's gateway drops TH's documents."""
    return Path(remote.settings.parties["TH"].options["directory"])


async def wait_file(path: Path, timeout: float = 15.0) -> None:
    """Wait until ``path`` exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)


async def test_remote_202_is_delivery(
    adapter: RemoteGatewayAdapter, remote: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """The remote gateway accepts (202) and delivers the document to its NSW."""
    message_id = str(uuid.uuid4())
    await adapter.deliver(handover(rsa_pki, message_id, with_message_id(sample_formd, message_id)))
    await wait_file(th_inbox(remote) / f"{message_id}.xml")


async def test_repeated_handover_is_delivered_once(
    adapter: RemoteGatewayAdapter, remote: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """Handing the same message over twice succeeds both times; the NSW gets one file."""
    message_id = str(uuid.uuid4())
    document = handover(rsa_pki, message_id, with_message_id(sample_formd, message_id))
    await adapter.deliver(document)
    await adapter.deliver(document)
    await wait_file(th_inbox(remote) / f"{message_id}.xml")
    await asyncio.sleep(0.5)
    assert [p.name for p in th_inbox(remote).iterdir()] == [f"{message_id}.xml"]


async def test_same_message_id_other_bytes_counts_as_delivered(
    adapter: RemoteGatewayAdapter, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """A 409 for a message id the remote already holds (e.g. re-signed) is delivered-already."""
    message_id = str(uuid.uuid4())
    document = with_message_id(sample_formd, message_id)
    await adapter.deliver(handover(rsa_pki, message_id, document))
    changed = document.replace(b"Export Manager", b"Export Director")
    await adapter.deliver(handover(rsa_pki, message_id, changed))


async def test_business_key_of_another_message_is_permanent(
    adapter: RemoteGatewayAdapter, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """The same Form D under a new message id: 409 duplicate, the remote lacks our id."""
    number = f"SG26-CO-{uuid.uuid4().hex[:8].upper()}".encode()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    def document(message_id: str) -> bytes:
        return sample_formd.replace(SAMPLE_MESSAGE_ID, message_id.encode()).replace(
            SAMPLE_DOCUMENT_ID, number
        )

    await adapter.deliver(handover(rsa_pki, first, document(first)))
    with pytest.raises(PermanentDeliveryFailure, match="409"):
        await adapter.deliver(handover(rsa_pki, second, document(second)))


async def test_wrong_key_is_permanent(
    remote: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """The remote refuses an unknown key (401): a permanent failure, dead-lettered."""
    wrong = RemoteGatewayAdapter.from_options(
        {"url": f"http://127.0.0.1:{remote.port}", "api_key": "wrong", **PIN}
    )
    message_id = str(uuid.uuid4())
    try:
        with pytest.raises(PermanentDeliveryFailure, match="401"):
            await wrong.deliver(
                handover(rsa_pki, message_id, with_message_id(sample_formd, message_id))
            )
    finally:
        await wrong.close()


async def test_other_partys_key_is_refused(
    remote: Gateway, rsa_pki: PkiBundle, sample_formd: bytes
) -> None:
    """MY's key forwarding SG's document: 403 sender-not-allowed, permanent."""
    as_my = RemoteGatewayAdapter.from_options(
        {"url": f"http://127.0.0.1:{remote.port}", "api_key": KEYS["MY"], **PIN}
    )
    message_id = str(uuid.uuid4())
    try:
        with pytest.raises(PermanentDeliveryFailure, match="sender-not-allowed"):
            await as_my.deliver(
                handover(rsa_pki, message_id, with_message_id(sample_formd, message_id))
            )
    finally:
        await as_my.close()


async def test_remote_down_is_transient(rsa_pki: PkiBundle, sample_formd: bytes) -> None:
    """Nobody listening: peer-unavailable, retried later."""
    down = RemoteGatewayAdapter.from_options(
        {"url": f"http://127.0.0.1:{free_port()}", "api_key": "k", "timeout_seconds": "2", **PIN}
    )
    message_id = str(uuid.uuid4())
    try:
        with pytest.raises(PeerUnavailable):
            await down.deliver(
                handover(rsa_pki, message_id, with_message_id(sample_formd, message_id))
            )
    finally:
        await down.close()


def test_options_are_checked(tmp_path: Path) -> None:
    """A URL with a path, no credentials and unknown options are all reported at once."""
    with pytest.raises(SettingsError) as caught:
        RemoteGatewayAdapter.from_options({"url": "http://th.example/v1/messages", "colour": "x"})
    problems = " | ".join(caught.value.problems)
    assert "base URL" in problems
    assert "colour: unknown option" in problems
    assert "api_key" in problems
    assert "receipt_signer_sha256 or receipt_signer_subject" in problems
    key_file = tmp_path / "key"
    key_file.write_text("secret\n")
    built = RemoteGatewayAdapter.from_options(
        {"url": "https://th.example:8443/", "api_key_file": str(key_file), **PIN}
    )
    assert built.url == "https://th.example:8443/v1/messages"


def test_the_receipt_signer_pin_is_read_and_checked() -> None:
    """Fingerprints are normalised (colons, case, several); a malformed one is reported."""
    upper = ":".join(["AB"] * 32)
    checked = RemoteGatewayOptions.parse(
        {
            "url": "https://th.example",
            "api_key": "k",
            "receipt_signer_sha256": f"{upper}, {'c' * 64}",
        }
    )
    assert checked.receipt_signer.fingerprints == {"ab" * 32, "c" * 64}
    assert checked.receipt_signer.subject is None
    with pytest.raises(SettingsError, match="not a SHA-256 fingerprint"):
        RemoteGatewayOptions.parse(
            {"url": "https://th.example", "api_key": "k", "receipt_signer_sha256": "abc"}
        )
