"""Named operators, their roles, and which role every operator route needs (one table).

Each operator key belongs to a named person or system and has one role:

    viewer    reads the operator pages: stats, queues, dead letters, partners, certificates,
              metrics, messages and stored documents
    operator  a viewer who may also act on messages: replay and discard dead letters
    admin     an operator who may also manage keys and configuration (lists the operator keys)
    auditor   a viewer who may also read the audit log (and nothing else: the people who act
              are not the people who audit them)

Keys live in the operator keys file (``http.operator_keys_file``, JSON), managed with
``asw-gateway keys add --name --role``, ``keys list`` and ``keys revoke``. The file stores, per
key, a random salt and ``sha256(salt + key)``, never the key; a revoked key stays in the file
(with ``revoked_at``) so that the audit log's names keep meaning something. The gateway re-reads
the file when it changes, so a revocation takes effect within a second without a restart.

``ROUTE_PERMISSIONS`` is the one place that says which permission each operator route needs;
a test fails when a route of the aiohttp router is missing from it (or from the open and party
routes).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import SettingsError

ROLES = ("viewer", "operator", "admin", "auditor")

VIEW = "view"
ACT = "act"
ADMINISTER = "administer"
AUDIT = "audit"

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "viewer": frozenset({VIEW}),
    "operator": frozenset({VIEW, ACT}),
    "admin": frozenset({VIEW, ACT, ADMINISTER}),
    "auditor": frozenset({VIEW, AUDIT}),
}
"""What each role may do."""

OPEN = "open"
PARTY = "party"

ROUTE_PERMISSIONS: Mapping[tuple[str, str], str] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/console"): OPEN,
    ("GET", "/console/"): OPEN,
    ("GET", "/console/static/{name}"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/v1/openapi.json"): OPEN,
    ("POST", "/v1/messages"): PARTY,
    ("GET", "/v1/messages"): PARTY,
    ("GET", "/v1/messages/{message_id}"): PARTY,
    ("GET", "/v1/messages/{message_id}/document"): PARTY,
    ("GET", "/v1/messages/{message_id}/document.json"): PARTY,
    ("POST", "/v1/validate"): PARTY,
    ("GET", "/v1/refusals"): PARTY,
    ("GET", "/v1/refusals/{refusal_id}"): PARTY,
    ("GET", "/v1/refusals/{refusal_id}/document"): PARTY,
    ("GET", "/v1/registers/aeo/{country}"): PARTY,
    ("GET", "/v1/registers/aeo/{country}/{aeo_id}"): PARTY,
    ("GET", "/v1/registers/certified-exporters/{country}"): PARTY,
    ("GET", "/v1/registers/certified-exporters/{country}/{authorisation_id}"): PARTY,
    ("GET", "/v1/inbox"): PARTY,
    ("GET", "/v1/inbox/{message_id}"): PARTY,
    ("POST", "/v1/inbox/{message_id}/ack"): PARTY,
    ("GET", "/v1/stats"): VIEW,
    ("GET", "/v1/queues"): VIEW,
    ("GET", "/v1/deadlines"): VIEW,
    ("GET", "/v1/certificates"): VIEW,
    ("GET", "/v1/partners"): VIEW,
    ("GET", "/metrics"): VIEW,
    ("GET", "/v1/dead-letters"): VIEW,
    ("POST", "/v1/dead-letters/{message_id}/replay"): ACT,
    ("POST", "/v1/dead-letters/replay"): ACT,
    ("POST", "/v1/dead-letters/{message_id}/discard"): ACT,
    ("GET", "/v1/operators"): ADMINISTER,
    ("GET", "/v1/audit"): AUDIT,
}
"""(method, route template) -> ``open``, ``party`` or the operator permission it needs.

``party`` routes take a party's key; an operator key whose role can ``view`` may also read them
(GET), with no party as caller. HEAD follows GET.
"""

RELOAD_CHECK_SECONDS = 1.0
"""How often (at most) the keys file's modification time is compared with what was read."""


def permission_of(method: str, template: str) -> str | None:
    """The permission a route needs, or None when the table does not know it."""
    method = "GET" if method == "HEAD" else method
    return ROUTE_PERMISSIONS.get((method, template))


def allows(role: str | None, permission: str) -> bool:
    """True when ``role`` has ``permission``; an unknown or missing role has none."""
    return role is not None and permission in ROLE_PERMISSIONS.get(role, frozenset())


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorKey:
    """One operator key as the keys file stores it: who, which role, a salted digest."""

    key_id: str
    name: str
    role: str
    salt: str
    sha256: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None

    def matches(self, key: str) -> bool:
        """True when ``key`` hashes to this entry (constant-time comparison)."""
        return hmac.compare_digest(salted_digest(self.salt, key), self.sha256)

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the salt and the digest."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def salted_digest(salt: str, key: str) -> str:
    """``sha256(salt + key)`` in hex; the key is 32 random bytes, so no slow hash is needed."""
    return hashlib.sha256(bytes.fromhex(salt) + key.encode("utf-8")).hexdigest()


def new_operator_key(key_id: str) -> str:
    """A fresh random key that names its id, so that a leaked key is easy to place."""
    return f"asw_op_{key_id}_{secrets.token_urlsafe(32)}"


def read_keys(path: Path) -> list[OperatorKey]:
    """The entries of a keys file; an absent file has none. Raises ``SettingsError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SettingsError([f"http.operator_keys_file: cannot read {path}: {exc}"]) from exc
    try:
        data = json.loads(text)
        entries = [OperatorKey(**entry) for entry in data["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            [f"http.operator_keys_file: {path} is not an operator keys file: {exc}"]
        ) from exc
    for entry in entries:
        if entry.role not in ROLES:
            raise SettingsError(
                [f"http.operator_keys_file: key {entry.key_id} has unknown role {entry.role!r}"]
            )
    return entries


def write_keys(path: Path, entries: list[OperatorKey]) -> None:
    """Replace the keys file atomically (write, fsync, rename), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"keys": [asdict(e) for e in entries]}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_key(path: Path, *, name: str, role: str, now: datetime) -> tuple[OperatorKey, str]:
    """Add a key for ``name`` with ``role``; return the entry and the key (shown once)."""
    name = name.strip()
    if not name:
        raise ValueError("an operator key needs the name of the person or system it is for")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    entries = read_keys(path)
    key_id = secrets.token_hex(4)
    while any(e.key_id == key_id for e in entries):
        key_id = secrets.token_hex(4)
    key = new_operator_key(key_id)
    salt = secrets.token_hex(16)
    entry = OperatorKey(
        key_id=key_id,
        name=name,
        role=role,
        salt=salt,
        sha256=salted_digest(salt, key),
        created_at=now.astimezone(UTC).isoformat(timespec="seconds"),
    )
    write_keys(path, [*entries, entry])
    return entry, key


def revoke_key(path: Path, key_id: str, *, now: datetime) -> OperatorKey:
    """Mark a key revoked (it stays listed); raises ``LookupError`` when unknown."""
    entries = read_keys(path)
    for index, entry in enumerate(entries):
        if entry.key_id == key_id:
            if entry.revoked_at is not None:
                return entry
            revoked = replace(entry, revoked_at=now.astimezone(UTC).isoformat(timespec="seconds"))
            entries[index] = revoked
            write_keys(path, entries)
            return revoked
    raise LookupError(f"no operator key {key_id!r} in {path}")


class OperatorKeys:
    """The keys file as the gateway sees it: read at start, re-read when it changes."""

    def __init__(self, path: str, *, check_every: float = RELOAD_CHECK_SECONDS) -> None:
        self._path = Path(path) if path else None
        self._check_every = check_every
        self._entries: list[OperatorKey] = []
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._refresh(force=True)

    @property
    def configured(self) -> bool:
        """True when a keys file is named in the settings."""
        return self._path is not None

    def _refresh(self, *, force: bool = False) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < self._check_every:
            return
        self._checked = now
        try:
            status = self._path.stat()
            stamp: tuple[int, int] | None = (status.st_mtime_ns, status.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and not force:
            return
        self._entries = read_keys(self._path)
        self._stamp = stamp

    def entries(self) -> list[OperatorKey]:
        """Every entry, revoked ones too, as of the last read."""
        self._refresh()
        return list(self._entries)

    def match(self, key: str) -> OperatorKey | None:
        """The active entry ``key`` belongs to, or None; every entry is compared."""
        with contextlib.suppress(SettingsError):  # a broken file: keep what was read last
            self._refresh()
        found: OperatorKey | None = None
        for entry in self._entries:
            if entry.matches(key) and entry.active:
                found = entry
        return found
