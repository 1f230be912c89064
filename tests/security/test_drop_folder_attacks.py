"""A party that controls its own drop-folder tree reaches nothing outside it (issue 12, 1 and 7).

Each test performs the attack for real against a running gateway (real folders, real RabbitMQ,
real signatures) and checks that the target outside the attacker's tree is unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from gateway.app import Gateway
from gateway.core.receipts import receipt_message_id
from gateway.core.states import MessageState
from gateway.core.topology import Topology
from tests.conftest import delete_topology, make_settings, with_message_id
from tests.integration.helpers import inbox, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

_DS = "http://www.w3.org/2000/09/xmldsig#"
Logs = list[MutableMapping[str, Any]]


@pytest.fixture(name="logs")
def _logs() -> Iterator[Logs]:
    """Every structured log line written while the test runs."""
    with structlog.testing.capture_logs() as captured:
        yield captured


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


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (links not followed) with its content and modification time."""
    found: dict[str, tuple[bytes, int]] = {}
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def _events(logs: Logs, event: str, **match: str) -> Logs:
    return [e for e in logs if e["event"] == event and all(e.get(k) == v for k, v in match.items())]


async def _settled() -> None:
    """Let every intake scan a few more times (poll 0.1 s) and deliveries run."""
    await asyncio.sleep(0.8)


def _victim(tmp_path: Path) -> Path:
    """A file outside every party's tree that no party may reach."""
    victim = tmp_path / "outside" / "passwd"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("root:x:0:0:root:/root:/bin/bash\nsecret-line-4f1a\n")
    return victim


# --- the failed/ folder turned into a link -------------------------------------------------------


@pytest.mark.parametrize("towards", ["inbox", "outbox"])
async def test_failed_folder_linked_to_another_party_receives_no_forgery(
    running_gateway: Gateway, sample_formd: bytes, logs: Logs, towards: str
) -> None:
    """MY links outbox/failed to SG's inbox or outbox: its refused forgery lands nowhere."""
    nsw = Path(running_gateway.settings.parties["SG"].options["outbox"]).parent.parent
    target = nsw / "SG" / towards
    target.mkdir(parents=True, exist_ok=True)
    outbox = _outbox(running_gateway, "MY")
    (outbox / "failed").symlink_to(target)
    before = {cc: _snapshot(nsw / cc) for cc in ("SG", "TH")}
    forgery = with_message_id(sample_formd)  # sender SG, unsigned: SG's key would sign it
    _drop(outbox, "forgery.xml", forgery)
    await _until(lambda: bool(_events(logs, "folder_unsafe", country="MY") or os.listdir(target)))
    await _settled()
    assert {cc: _snapshot(nsw / cc) for cc in ("SG", "TH")} == before
    assert os.listdir(target) == []
    assert (outbox / "forgery.xml").read_bytes() == forgery  # not moved anywhere
    assert "failed" in _events(logs, "folder_unsafe", country="MY")[0]["detail"]


async def test_done_folder_linked_elsewhere_stops_the_intake_before_any_move(
    running_gateway: Gateway, sample_formd: bytes, tmp_path: Path, logs: Logs
) -> None:
    """An outbox whose done/ is a link is not read at all: the document is not even submitted."""
    elsewhere = _victim(tmp_path).parent
    outbox = _outbox(running_gateway, "SG")
    (outbox / "done").symlink_to(elsewhere)
    before = _snapshot(elsewhere)
    message_id = str(uuid.uuid4())
    _drop(outbox, "honest.xml", with_message_id(sample_formd, message_id))
    await _until(
        lambda: bool(_events(logs, "folder_unsafe", country="SG")) or _snapshot(elsewhere) != before
    )
    await _settled()
    assert _snapshot(elsewhere) == before
    assert (outbox / "honest.xml").exists()
    assert await running_gateway.journal.get(message_id) is None  # type: ignore[union-attr]
    # Mended by the operator: the intake resumes on its own.
    (outbox / "done").unlink()
    assert await wait_for_file(outbox / "done" / "honest.xml")
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{message_id}.xml")
    assert _events(logs, "folder_safe_again", country="SG")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")
async def test_failed_folder_of_another_owner_is_not_used(
    running_gateway: Gateway, sample_formd: bytes, logs: Logs
) -> None:
    """A real failed/ folder owned by a stranger is refused like a link: nothing moves into it."""
    outbox = _outbox(running_gateway, "MY")
    (outbox / "failed").mkdir()
    os.chown(outbox / "failed", 54321, -1)
    _drop(outbox, "forgery.xml", with_message_id(sample_formd))
    await _until(lambda: bool(_events(logs, "folder_unsafe", country="MY")))
    await _settled()
    assert os.listdir(outbox / "failed") == []
    assert (outbox / "forgery.xml").exists()
    assert _events(logs, "folder_unsafe", country="MY")


# --- planted names -------------------------------------------------------------------------------


async def test_planted_problem_file_link_is_not_written_through(
    running_gateway: Gateway, sample_formd: bytes, tmp_path: Path
) -> None:
    """A link planted as the next .problem.json (and as the file's own name) leaves its target."""
    victim = _victim(tmp_path)
    before = victim.read_bytes(), victim.stat().st_mtime_ns
    outbox = _outbox(running_gateway, "MY")
    failed = outbox / "failed"
    failed.mkdir()
    (failed / "forgery.xml.problem.json").symlink_to(victim)
    (failed / "forgery.1.xml").symlink_to(victim)
    _drop(outbox, "forgery.xml", with_message_id(sample_formd))
    reason = failed / "forgery.2.xml.problem.json"
    assert await wait_for_file(reason)
    assert json.loads(reason.read_text())["code"] == "sender-not-allowed"
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert (failed / "forgery.xml.problem.json").is_symlink()
    assert not (reason.stat().st_mode & 0o007)  # not readable by other users


async def test_planted_temporary_links_in_an_inbox_are_not_written_through(
    running_gateway: Gateway, sample_formd: bytes, tmp_path: Path
) -> None:
    """Links under the old predictable temporary names (document, receipt) leave their target."""
    victim = _victim(tmp_path)
    before = victim.read_bytes(), victim.stat().st_mtime_ns
    message_id = str(uuid.uuid4())
    th_inbox = inbox(running_gateway, "TH")
    sg_inbox = inbox(running_gateway, "SG")
    for folder in (th_inbox, sg_inbox):
        folder.mkdir(parents=True, exist_ok=True)
    (th_inbox / f".{message_id}.tmp").symlink_to(victim)
    receipt_id = receipt_message_id(message_id)
    (sg_inbox / f".{receipt_id}.tmp").symlink_to(victim)
    _drop(_outbox(running_gateway, "SG"), "honest.xml", with_message_id(sample_formd, message_id))
    assert await wait_for_file(th_inbox / f"{message_id}.xml")
    assert await wait_for_file(sg_inbox / f"{receipt_id}.xml")  # the receipt back to SG
    await _settled()
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert b"<" in (th_inbox / f"{message_id}.xml").read_bytes()


# --- links and hard links inside an outbox -------------------------------------------------------


async def test_link_to_a_file_outside_is_never_read(
    running_gateway: Gateway, tmp_path: Path, logs: Logs
) -> None:
    """A link in the outbox to a passwd-like file is moved aside unread, its content not shown."""
    victim = _victim(tmp_path)
    before = victim.read_bytes(), victim.stat().st_mtime_ns
    outbox = _outbox(running_gateway, "MY")
    (outbox / "passwd.xml").symlink_to(victim)
    reason = outbox / "failed" / "passwd.xml.problem.json"
    assert await wait_for_file(reason)
    problem = json.loads(reason.read_text())
    assert problem["code"] == "file-unsafe"
    assert "secret-line" not in reason.read_text()
    assert (outbox / "failed" / "passwd.xml").is_symlink()
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert not any("secret-line" in json.dumps(e, default=str) for e in logs)


async def test_link_to_another_partys_document_is_never_submitted(
    running_gateway: Gateway, sample_formd: bytes, tmp_path: Path
) -> None:
    """A link in SG's outbox to a valid SG document elsewhere is not submitted nor delivered."""
    message_id = str(uuid.uuid4())
    document = tmp_path / "outside" / "formd.xml"
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_bytes(with_message_id(sample_formd, message_id))
    before = _snapshot(document.parent)
    outbox = _outbox(running_gateway, "SG")
    (outbox / "linked.xml").symlink_to(document)
    reason = outbox / "failed" / "linked.xml.problem.json"
    assert await wait_for_file(reason)
    assert json.loads(reason.read_text())["code"] == "file-unsafe"
    await _settled()
    assert not (inbox(running_gateway, "TH") / f"{message_id}.xml").exists()
    assert await running_gateway.journal.get(message_id) is None  # type: ignore[union-attr]
    assert _snapshot(document.parent) == before


async def test_hard_linked_file_is_refused(
    running_gateway: Gateway, sample_formd: bytes, tmp_path: Path
) -> None:
    """A hard link to a document outside the tree is refused unread; the original stays."""
    message_id = str(uuid.uuid4())
    document = tmp_path / "outside" / "formd.xml"
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_bytes(with_message_id(sample_formd, message_id))
    before = _snapshot(document.parent)
    outbox = _outbox(running_gateway, "SG")
    os.link(document, outbox / "hard.xml")
    reason = outbox / "failed" / "hard.xml.problem.json"
    assert await wait_for_file(reason)
    problem = json.loads(reason.read_text())
    assert problem["code"] == "file-unsafe" and "hard link" in problem["detail"]
    await _settled()
    assert not (inbox(running_gateway, "TH") / f"{message_id}.xml").exists()
    assert await running_gateway.journal.get(message_id) is None  # type: ignore[union-attr]
    assert _snapshot(document.parent) == before


# --- an inbox replaced by a link -----------------------------------------------------------------


async def test_inbox_replaced_by_a_link_gets_nothing_and_the_message_is_dead_lettered(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """TH's inbox linked to MY's: delivery refused, retried, dead-lettered; nothing written."""
    th_inbox, my_inbox = inbox(running_gateway, "TH"), inbox(running_gateway, "MY")
    my_inbox.mkdir(parents=True)
    th_inbox.parent.mkdir(parents=True, exist_ok=True)
    th_inbox.symlink_to(my_inbox)
    message_id = str(uuid.uuid4())
    _drop(_outbox(running_gateway, "SG"), "honest.xml", with_message_id(sample_formd, message_id))
    journal = running_gateway.journal
    assert journal is not None

    async def state() -> MessageState | None:
        view = await journal.get(message_id)
        return view.summary.state if view else None

    for _ in range(200):
        if await state() is MessageState.DEAD:
            break
        await asyncio.sleep(0.1)
    view = await journal.get(message_id)
    assert view is not None and view.summary.state is MessageState.DEAD
    assert "folder-unsafe" in [change.error_code for change in view.timeline]
    assert os.listdir(my_inbox) == []
    assert th_inbox.is_symlink()


# --- a file that makes intake fail ---------------------------------------------------------------


def _crashing_signature(pki: PkiBundle, document: bytes) -> bytes:
    """SG-signed, with its Transform elements in a foreign namespace and SignedInfo re-signed.

    The shape check reads the transforms' Algorithm attributes whatever the namespace; the
    verifier then looked only for ds:Transform and raised IndexError (issue 12, section 6).
    """
    root = etree.fromstring(pki.signed("SG", document))
    for transform in root.iter(f"{{{_DS}}}Transform"):
        transform.tag = "{urn:example:foreign}Transform"
    signed_info = root.find(f".//{{{_DS}}}SignedInfo")
    value = root.find(f".//{{{_DS}}}SignatureValue")
    assert signed_info is not None and value is not None
    key = serialization.load_pem_private_key(pki.issued("SG").key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True)
    value.text = base64.b64encode(key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def test_file_that_crashes_the_parser_is_set_aside_and_the_next_is_delivered(
    running_gateway: Gateway, sample_formd: bytes, rsa_pki: PkiBundle, logs: Logs
) -> None:
    """A hostile signed file moves to failed/ with its problem; the next file is delivered."""
    outbox = _outbox(running_gateway, "SG")
    hostile = _crashing_signature(rsa_pki, with_message_id(sample_formd))
    next_id = str(uuid.uuid4())
    _drop(outbox, "a-hostile.xml", hostile)
    _drop(outbox, "b-honest.xml", with_message_id(sample_formd, next_id))
    reason = outbox / "failed" / "a-hostile.xml.problem.json"
    assert await wait_for_file(reason)
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{next_id}.xml")
    assert (outbox / "failed" / "a-hostile.xml").read_bytes() == hostile
    problem = json.loads(reason.read_text())
    assert problem["code"] and problem["retryable"] is False
    if problem["code"] == "internal-error":  # the unexpected failure itself, logged
        crashed = _events(logs, "intake_file_failed", country="SG")
        assert crashed and crashed[0]["error_type"]
        assert "SignatureValue" not in json.dumps(crashed, default=str)  # no payload logged
    intakes = {n: r for n, r in running_gateway.supervisor.restarts.items() if "intake" in n}
    assert intakes and not any(intakes.values())  # no intake task crashed


async def test_intake_survives_a_failing_scan_and_resumes(
    running_gateway: Gateway, sample_formd: bytes, logs: Logs
) -> None:
    """A scan that fails (the party's folder above the outbox gone wrong) is logged and retried."""
    outbox = _outbox(running_gateway, "VN")
    party = outbox.parent
    aside = party.with_name("VN-aside")
    party.rename(aside)
    party.write_text("not a folder")  # opening the outbox now fails with ENOTDIR
    assert await _until(lambda: bool(_events(logs, "intake_scan_failed", country="VN")))
    failure = _events(logs, "intake_scan_failed", country="VN")[0]
    assert failure["error_type"] == "NotADirectoryError" and failure["restart_in_seconds"] > 0
    party.unlink()
    aside.rename(party)
    document = with_message_id(sample_formd).replace(b">SG<", b">VN<")
    _drop(outbox, "after.xml", document)
    reason = outbox / "failed" / "after.xml.problem.json"
    done = outbox / "done" / "after.xml"
    assert await _until(lambda: reason.exists() or done.exists(), timeout=45)


# --- start-up permission check -------------------------------------------------------------------


async def test_start_warns_about_folders_other_users_can_write(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle, logs: Logs
) -> None:
    """A world-writable outbox and a group-writable inbox are named at start; safe ones are not."""
    settings = make_settings(tmp_path, amqp_url, f"test-{uuid.uuid4().hex[:8]}", rsa_pki.directory)
    sg_outbox = Path(settings.parties["SG"].options["outbox"])
    th_inbox = Path(settings.parties["TH"].options["directory"])
    for folder, mode in ((sg_outbox, 0o777), (th_inbox, 0o770)):
        folder.mkdir(parents=True)
        folder.chmod(mode)
    gateway = Gateway(settings)
    await gateway.start(port=0)
    try:
        warned = _events(logs, "folder_permissions_unsafe")
    finally:
        await gateway.stop()
        await delete_topology(
            amqp_url,
            Topology(settings.amqp.prefix),
            tuple(settings.parties),
            gateway.broker.retry_delays_ms,
        )
    assert sorted(e["folder"] for e in warned) == sorted([str(sg_outbox), str(th_inbox)])
    by_folder = {e["folder"]: e for e in warned}
    assert by_folder[str(sg_outbox)]["country"] == "SG"
    assert any("every user" in p for p in by_folder[str(sg_outbox)]["problems"])
