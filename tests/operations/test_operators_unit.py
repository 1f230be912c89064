"""Named operator keys, roles and the route table, without services."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.auth import Authenticator, Principal
from gateway.cli import main
from gateway.errors import RoleForbidden
from gateway.journal import audit_of, open_journal
from gateway.operators import (
    ROLES,
    ROUTE_PERMISSIONS,
    OperatorKeys,
    add_key,
    permission_of,
    read_keys,
    revoke_key,
)
from gateway.settings import HttpSettings, Settings
from tests.conftest import make_settings
from tests.pki_fixtures import PkiBundle

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_keys_file_stores_salted_digests_never_keys(tmp_path: Path) -> None:
    """The file holds a salt and a digest per key; the key itself appears nowhere in it."""
    path = tmp_path / "operators.json"
    first, key = add_key(path, name="Alice Tan", role="operator", now=NOW)
    second, other = add_key(path, name="Alice Tan", role="operator", now=NOW)
    text = path.read_text()
    assert key not in text and other not in text
    assert first.salt != second.salt and first.sha256 != second.sha256
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [e.key_id for e in read_keys(path)] == [first.key_id, second.key_id]
    keys = OperatorKeys(str(path))
    assert keys.match(key) == first
    assert keys.match(other) == second
    assert keys.match(key + "x") is None


def test_unknown_role_and_empty_name_are_refused(tmp_path: Path) -> None:
    """A key needs one of the four roles and a name."""
    with pytest.raises(ValueError, match="role must be one of"):
        add_key(tmp_path / "k.json", name="Bob", role="root", now=NOW)
    with pytest.raises(ValueError, match="name"):
        add_key(tmp_path / "k.json", name="  ", role="viewer", now=NOW)


def test_revocation_is_noticed_without_restart(tmp_path: Path) -> None:
    """A revoked key stops matching once the gateway re-reads the changed file."""
    path = tmp_path / "operators.json"
    entry, key = add_key(path, name="Carol", role="admin", now=NOW)
    keys = OperatorKeys(str(path), check_every=0.0)
    assert keys.match(key) is not None
    time.sleep(0.01)  # a different modification time
    revoked = revoke_key(path, entry.key_id, now=NOW)
    assert revoked.revoked_at is not None
    assert keys.match(key) is None
    assert [e.revoked_at for e in keys.entries()] == [revoked.revoked_at]
    with pytest.raises(LookupError):
        revoke_key(path, "nope", now=NOW)


def _principal(role: str) -> Principal:
    return Principal(
        party=None, operator=True, method="operator-key", key_id="k", name=role, role=role
    )


@pytest.mark.parametrize(
    ("role", "method", "template", "allowed"),
    [
        ("viewer", "GET", "/v1/stats", True),
        ("viewer", "GET", "/v1/messages/{message_id}/document", True),
        ("viewer", "POST", "/v1/dead-letters/{message_id}/replay", False),
        ("viewer", "GET", "/v1/audit", False),
        ("operator", "POST", "/v1/dead-letters/{message_id}/replay", True),
        ("operator", "GET", "/v1/operators", False),
        ("admin", "GET", "/v1/operators", True),
        ("admin", "GET", "/v1/audit", False),
        ("auditor", "GET", "/v1/audit", True),
        ("auditor", "POST", "/v1/dead-letters/{message_id}/replay", False),
        ("auditor", "HEAD", "/v1/stats", True),
    ],
)
def test_roles_are_checked_against_the_route_table(
    role: str, method: str, template: str, allowed: bool
) -> None:
    """Each role may do what its permissions say, and is refused 403 role-forbidden otherwise."""
    authenticator = Authenticator(Settings(http=HttpSettings(auth="api-key")))
    if allowed:
        authenticator.authorize(_principal(role), method=method, template=template)
    else:
        with pytest.raises(RoleForbidden, match=role):
            authenticator.authorize(_principal(role), method=method, template=template)


def test_every_route_is_in_the_permission_table(tmp_path: Path, rsa_pki: PkiBundle) -> None:
    """A route of the router without an entry in ROUTE_PERMISSIONS (or the reverse) fails."""
    settings = make_settings(tmp_path, "amqp://guest:guest@127.0.0.1:1/", "t", rsa_pki.directory)
    app = Gateway(settings).application()
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert routed == set(ROUTE_PERMISSIONS)
    assert all(permission_of(method, path) is not None for method, path in routed)
    assert set(ROLES) == {"viewer", "operator", "admin", "auditor"}


def test_cli_adds_lists_and_revokes_with_audit_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keys add/list/revoke` manage the file and append key-added/key-revoked to the journal."""
    keys_file = tmp_path / "operators.json"
    journal_db = tmp_path / "journal.db"
    monkeypatch.setitem(os.environ, "ASW_JOURNAL__URL", f"sqlite://{journal_db}")
    monkeypatch.setitem(os.environ, "ASW_HTTP__OPERATOR_KEYS_FILE", str(keys_file))
    missing = ["--config", str(tmp_path / "none.toml")]
    assert main(["keys", "add", "--name", "Dewi", "--role", "auditor", "--json", *missing]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["name"] == "Dewi" and added["role"] == "auditor" and added["audited"] is True
    assert added["key"] not in keys_file.read_text()
    assert main(["keys", "list", "--json", *missing]) == 0
    [listed] = json.loads(capsys.readouterr().out)["operators"]
    assert listed["key_id"] == added["key_id"] and "sha256" not in listed
    assert (
        main(["keys", "revoke", added["key_id"], "--reason", "left", "--by", "Eko", *missing]) == 0
    )
    assert main(["keys", "revoke", "unknown", *missing]) == 1

    async def audit_rows() -> list[tuple[str, str, str | None]]:
        journal = await open_journal(f"sqlite://{journal_db}")
        try:
            rows = await audit_of(journal).audit_list()
        finally:
            await journal.close()
        return [(r.action, r.actor, r.reason) for r in rows]

    rows = asyncio.run(audit_rows())
    assert rows[0] == ("key-revoked", "Eko", "left")
    assert rows[1][0] == "key-added"


def test_cli_without_a_keys_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no http.operator_keys_file and no --file, `keys list` exits 2 with a hint."""
    monkeypatch.delitem(os.environ, "ASW_HTTP__OPERATOR_KEYS_FILE", raising=False)
    assert main(["keys", "list", "--config", str(tmp_path / "none.toml")]) == 2
    assert "operator_keys_file" in capsys.readouterr().err
