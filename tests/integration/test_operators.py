"""Named operators against a real gateway: roles on every route, the audit log, revocation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.operators import add_key, revoke_key
from tests.conftest import with_message_id
from tests.federation.harness import KEYS, hub_settings, running
from tests.integration.helpers import inbox, wait_for_file
from tests.pki_fixtures import PkiBundle

pytestmark = pytest.mark.rabbitmq

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ROLE_NAMES = {
    "viewer": "Vera Viewer",
    "operator": "Omar Operator",
    "admin": "Ana Admin",
    "auditor": "Aud Itor",
}


class Operators:
    """A running gateway with one named key per role."""

    def __init__(self, gateway: Gateway, keys: dict[str, str], ids: dict[str, str], path: Path):
        self.gateway = gateway
        self.keys = keys
        self.ids = ids
        self.path = path
        self.url = f"http://127.0.0.1:{gateway.port}"

    async def call(
        self,
        role: str | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request with ``role``'s key (or ``headers`` alone); status and decoded body."""
        sent = dict(headers or {})
        if role is not None:
            sent["X-API-Key"] = self.keys[role]
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=json, data=data, headers=sent) as answer,
        ):
            text = await answer.text()
            try:
                return answer.status, await answer.json(content_type=None)
            except ValueError:
                return answer.status, text


@pytest.fixture
async def operators(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> AsyncIterator[Operators]:
    """A gateway with api-key auth and an operator keys file holding one key per role."""
    path = tmp_path / "operators.json"
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for role, name in ROLE_NAMES.items():
        entry, keys[role] = add_key(path, name=name, role=role, now=NOW)
        ids[role] = entry.key_id
    settings = hub_settings(
        tmp_path,
        amqp_url,
        rsa_pki.directory,
        http={"auth": "api-key", "operator_keys_file": str(path)},
    )
    async with running(settings) as gateway:
        yield Operators(gateway, keys, ids, path)


async def _submit(ops: Operators, document: bytes) -> str:
    message_id = str(uuid.uuid4())
    status, body = await ops.call(
        None,
        "POST",
        "/v1/messages",
        data=with_message_id(document, message_id),
        headers={"X-API-Key": KEYS["SG"], "Content-Type": "application/xml"},
    )
    assert status == 202, body
    return message_id


async def _wait_state(ops: Operators, message_id: str, states: set[str]) -> None:
    for _ in range(150):
        status, body = await ops.call("viewer", "GET", f"/v1/messages/{message_id}")
        if status == 200 and body["state"] in states:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {states}")


async def test_each_role_reaches_only_its_routes(operators: Operators) -> None:
    """viewer reads; operator acts; admin lists keys; auditor reads the audit log; else 403."""
    ops = operators
    for role in ROLE_NAMES:
        assert (await ops.call(role, "GET", "/v1/stats"))[0] == 200, role
    status, problem = await ops.call(
        "viewer", "POST", f"/v1/dead-letters/{uuid.uuid4()}/replay", json={"reason": "x"}
    )
    assert (status, problem["code"]) == (403, "role-forbidden")
    assert "Vera Viewer" in problem["detail"]
    assert (await ops.call("viewer", "GET", "/v1/audit"))[0] == 403
    assert (await ops.call("admin", "GET", "/v1/audit"))[0] == 403
    assert (await ops.call("operator", "GET", "/v1/operators"))[0] == 403
    assert (await ops.call("auditor", "GET", "/v1/audit"))[0] == 200
    status, listed = await ops.call("admin", "GET", "/v1/operators")
    assert status == 200
    assert {o["name"] for o in listed["operators"]} == set(ROLE_NAMES.values())
    assert all("sha256" not in o and "salt" not in o for o in listed["operators"])
    status, problem = await ops.call(
        "operator", "POST", f"/v1/dead-letters/{uuid.uuid4()}/replay", json={"reason": "x"}
    )
    assert (status, problem["code"]) == (404, "not-found")  # allowed through, nothing there
    assert (await ops.call(None, "GET", "/v1/stats"))[0] == 401


async def test_document_views_are_audited_with_who_and_why(
    operators: Operators, sample_formd: bytes
) -> None:
    """Serving a stored document (XML or JSON) appends who, which, why to the audit log."""
    ops = operators
    message_id = await _submit(ops, sample_formd)
    status, _ = await ops.call(
        "viewer",
        "GET",
        f"/v1/messages/{message_id}/document",
        headers={"X-Audit-Reason": "TH customs asked about CO 42"},
    )
    assert status == 200
    assert (await ops.call("viewer", "GET", f"/v1/messages/{message_id}/document.json"))[0] == 200
    status, log = await ops.call("auditor", "GET", f"/v1/audit?target={message_id}")
    assert status == 200
    rows = log["entries"]
    assert [(r["action"], r["actor"], r["role"], r["detail"]) for r in rows] == [
        ("document-viewed", "Vera Viewer", "viewer", "json"),
        ("document-viewed", "Vera Viewer", "viewer", "xml"),
    ]
    assert rows[1]["reason"] == "TH customs asked about CO 42"
    assert rows[1]["key_id"] == ops.ids["viewer"]
    status, page = await ops.call("auditor", "GET", f"/v1/audit?target={message_id}&limit=1")
    assert len(page["entries"]) == 1 and "before=" in page["next"]


async def test_replay_takes_the_operator_name_from_the_key(
    operators: Operators, sample_formd: bytes
) -> None:
    """The body's free-text operator is not who acted: the key's name goes to timeline and log."""
    ops = operators
    folder = inbox(ops.gateway, "TH")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("blocked: a file where the folder should be")
    message_id = await _submit(ops, sample_formd)
    await _wait_state(ops, message_id, {"DEAD"})
    folder.unlink()
    status, replayed = await ops.call(
        "operator",
        "POST",
        f"/v1/dead-letters/{message_id}/replay",
        json={"reason": "TH folder repaired", "operator": "someone-else"},
    )
    assert status == 202, replayed
    assert replayed["operator"] == "Omar Operator"
    assert await wait_for_file(folder / f"{message_id}.xml")
    _, view = await ops.call("viewer", "GET", f"/v1/messages/{message_id}")
    details = " ".join(row["detail"] or "" for row in view["timeline"])
    assert "Omar Operator" in details and "someone-else" not in details
    _, log = await ops.call("auditor", "GET", "/v1/audit?action=replay")
    [row] = log["entries"]
    assert (row["actor"], row["target"], row["reason"]) == (
        "Omar Operator",
        message_id,
        "TH folder repaired",
    )


async def test_a_revoked_key_is_refused_without_restart(operators: Operators) -> None:
    """Revoking a key in the file locks it out within about a second."""
    ops = operators
    assert (await ops.call("viewer", "GET", "/v1/stats"))[0] == 200
    revoke_key(ops.path, ops.ids["viewer"], now=NOW)
    for _ in range(40):
        status, body = await ops.call("viewer", "GET", "/v1/stats")
        if status == 401:
            assert body["code"] == "unauthenticated"
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the revoked key was still accepted after 4 s")
