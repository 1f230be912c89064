"""Small helpers for talking to a running gateway in integration tests."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from gateway.app import Gateway
from tests.conftest import SAMPLES

REQUEST_SAMPLE = SAMPLES / "retransmission" / "valid" / "th-sg-formd-lost.xml"


def base_url(gateway: Gateway) -> str:
    """The HTTP base URL of a started gateway."""
    return f"http://127.0.0.1:{gateway.port}"


async def submit(
    session: aiohttp.ClientSession, gateway: Gateway, body: bytes, path: str = "/v1/messages"
) -> tuple[int, dict[str, Any], str]:
    """POST ``body`` as XML; return status, JSON body and content type."""
    async with session.post(
        base_url(gateway) + path, data=body, headers={"Content-Type": "application/xml"}
    ) as response:
        return response.status, await response.json(content_type=None), response.content_type


async def wait_for_file(path: Path, timeout: float = 15.0) -> bool:
    """Poll until ``path`` exists or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        await asyncio.sleep(0.05)
    return path.exists()


def inbox(gateway: Gateway, country: str) -> Path:
    """The drop folder of ``country`` in a test gateway."""
    return Path(gateway.settings.parties[country].options["directory"])


def delivered_files(gateway: Gateway) -> list[Path]:
    """Every document delivered into any member state's drop folder."""
    files: list[Path] = []
    for country in gateway.settings.parties:
        folder = inbox(gateway, country)
        if folder.exists():
            files.extend(p for p in folder.iterdir() if p.suffix == ".xml")
    return files


def without_element(document: bytes, local_name: str) -> bytes:
    """The document with the first element called ``local_name`` removed."""
    root = etree.fromstring(document)
    for node in root.iter(etree.Element):
        if etree.QName(node).localname == local_name:
            parent = node.getparent()
            assert parent is not None
            parent.remove(node)
            return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    raise AssertionError(f"no element {local_name} in the document")


def retransmission_request(
    formd_id: str, *, sender: str = "TH", receiver: str = "SG"
) -> tuple[str, bytes]:
    """A new re-transmission request (OCP Rule 29(3)) for ``formd_id``: its id and bytes."""
    request_id = str(uuid.uuid4())
    text = REQUEST_SAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"<cm:MessageID>[^<]+<", f"<cm:MessageID>{request_id}<", text)
    text = re.sub(r"<cm:ReferencedMessageID>[^<]+<", f"<cm:ReferencedMessageID>{formd_id}<", text)
    text = text.replace(
        "<cm:SenderParty><cm:CountryCode>TH<",
        f"<cm:SenderParty><cm:CountryCode>{sender}<",
    ).replace(
        "<cm:ReceiverParty><cm:CountryCode>SG<",
        f"<cm:ReceiverParty><cm:CountryCode>{receiver}<",
    )
    return request_id, text.encode()


async def message_view(session: aiohttp.ClientSession, gateway: Gateway, message_id: str) -> Any:
    """``GET /v1/messages/{message_id}`` on ``gateway``, as JSON (a problem too)."""
    async with session.get(f"{base_url(gateway)}/v1/messages/{message_id}") as response:
        return await response.json(content_type=None)


async def wait_for_state(
    session: aiohttp.ClientSession, gateway: Gateway, message_id: str, state: str
) -> Any:
    """The message's view once it is in ``state``; fails after about 20 s."""
    view: Any = None
    for _ in range(200):
        view = await message_view(session, gateway, message_id)
        if view.get("state") == state:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {state}: {view}")
