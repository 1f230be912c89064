"""Documents an NSW drops into its outbox folder take the same path as HTTP submissions."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.integration.helpers import inbox, wait_for_file, without_element

pytestmark = pytest.mark.rabbitmq


def _outbox(gateway: Gateway, country: str) -> Path:
    folder = Path(gateway.settings.parties[country].options["outbox"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _drop(folder: Path, name: str, data: bytes) -> Path:
    """Write as an NSW should: under a temporary name, then rename."""
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(data)
    target = folder / name
    temporary.replace(target)
    return target


async def test_dropped_form_d_is_delivered_and_moved_to_done(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A valid Form D in SG's outbox reaches TH's inbox and the file moves to done/."""
    message_id = str(uuid.uuid4())
    outbox = _outbox(running_gateway, "SG")
    _drop(outbox, "certificate-1.xml", with_message_id(sample_formd, message_id))
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{message_id}.xml")
    assert await wait_for_file(outbox / "done" / "certificate-1.xml")
    assert not (outbox / "certificate-1.xml").exists()


async def test_refused_file_moves_to_failed_with_the_reason(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A Form D missing a box moves to failed/ beside a problem.json naming the code."""
    outbox = _outbox(running_gateway, "SG")
    broken = without_element(with_message_id(sample_formd), "Consignee")
    _drop(outbox, "broken.xml", broken)
    reason = outbox / "failed" / "broken.xml.problem.json"
    assert await wait_for_file(reason)
    problem = json.loads(reason.read_text())
    assert problem["code"] in {"schema-violation", "business-rule-violation"}
    assert (outbox / "failed" / "broken.xml").read_bytes() == broken


async def test_a_party_cannot_send_as_another_through_its_folder(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A document with sender SG dropped into MY's outbox is refused as sender-not-allowed."""
    outbox = _outbox(running_gateway, "MY")
    _drop(outbox, "spoofed.xml", with_message_id(sample_formd))
    reason = outbox / "failed" / "spoofed.xml.problem.json"
    assert await wait_for_file(reason)
    assert json.loads(reason.read_text())["code"] == "sender-not-allowed"


async def test_temporary_names_are_never_read(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Files still being written (dot names, .tmp) are left alone."""
    outbox = _outbox(running_gateway, "SG")
    (outbox / ".half-written.xml").write_bytes(sample_formd[:100])
    (outbox / "upload.xml.tmp").write_bytes(sample_formd[:100])
    await asyncio.sleep(0.6)
    assert sorted(p.name for p in outbox.iterdir()) == [".half-written.xml", "upload.xml.tmp"]
