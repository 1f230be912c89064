"""Small helpers for talking to a running gateway in integration tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from gateway.app import Gateway


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
