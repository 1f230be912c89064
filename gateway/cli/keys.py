"""``asw-gateway keys``: API keys for parties, and named operator keys with roles.

``keys new --party SG`` makes a party's key and prints it once with its SHA-256, which goes in
``parties.<CC>.api_key_sha256`` (``--operator``: the one shared ``http.operator_api_key_sha256``).

``keys add --name "Alice Tan" --role operator`` adds a named operator key to the operator keys
file (``http.operator_keys_file``, or ``--file``) and prints the key once; ``keys list`` shows
who has which role; ``keys revoke KEY_ID`` revokes one (the gateway notices within a second).
Every change is appended to the journal's audit log (``--by`` names who made it; default the
login name), when the configuration names a journal that can be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.auth import key_digest
from gateway.core.envelope import MEMBER_STATES
from gateway.errors import GatewayError
from gateway.journal import AuditEntry, audit_of, open_journal
from gateway.operators import ROLES, OperatorKey, add_key, read_keys, revoke_key
from gateway.settings import DEFAULT_CONFIG, journal_url, load_settings

KEY_BYTES = 32


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``keys`` subcommand."""
    parser = subparsers.add_parser("keys", help="make API keys for parties and operators")
    commands = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = commands.add_parser("new", help="print a fresh random API key once, and its SHA-256")
    who = new.add_mutually_exclusive_group(required=True)
    who.add_argument("--party", help="country code of the party the key is for, e.g. SG")
    who.add_argument("--operator", action="store_true", help="a key for the operator endpoints")
    new.add_argument("--json", action="store_true", help="print one JSON object instead")
    new.set_defaults(handler=run_new)

    add = commands.add_parser("add", help="add a named operator key with a role; print it once")
    add.add_argument("--name", required=True, help="the person or system the key is for")
    add.add_argument("--role", required=True, choices=ROLES, help="what the key may do")
    add.add_argument("--reason", default="", help="why (kept in the audit log)")
    add.add_argument("--json", action="store_true", help="print one JSON object instead")
    _file_options(add)
    add.set_defaults(handler=run_add)

    listing = commands.add_parser("list", help="list the operator keys (never the keys)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _file_options(listing)
    listing.set_defaults(handler=run_list)

    revoke = commands.add_parser("revoke", help="revoke an operator key by its id")
    revoke.add_argument("key_id", help="the key id that `keys list` shows")
    revoke.add_argument("--reason", default="", help="why (kept in the audit log)")
    _file_options(revoke)
    revoke.set_defaults(handler=run_revoke)


def _file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration file"
    )
    parser.add_argument(
        "--file", type=Path, default=None, help="operator keys file (default: from the config)"
    )
    parser.add_argument(
        "--by", default="", help="who makes the change, for the audit log (default: login name)"
    )


def new_key(label: str) -> str:
    """A fresh random key; the label (``sg``, ``op``) makes a leaked key easy to place."""
    return f"asw_{label}_{secrets.token_urlsafe(KEY_BYTES)}"


def run_new(args: argparse.Namespace) -> int:
    """Print a new key and where its digest goes in the configuration."""
    if args.party is not None:
        party = args.party.upper()
        if party not in MEMBER_STATES:
            print(f"asw-gateway keys: {args.party!r} is not an ASEAN member state", file=sys.stderr)
            return 2
        key = new_key(party.lower())
        setting = f"parties.{party}.api_key_sha256"
        toml = f'[parties.{party}]\napi_key_sha256 = ["{key_digest(key)}"]'
        env = f"ASW_PARTIES__{party}__API_KEY_SHA256={key_digest(key)}"
    else:
        party = None
        key = new_key("op")
        setting = "http.operator_api_key_sha256"
        toml = f'[http]\noperator_api_key_sha256 = "{key_digest(key)}"'
        env = f"ASW_HTTP__OPERATOR_API_KEY_SHA256={key_digest(key)}"
    digest = key_digest(key)
    if args.json:
        print(json.dumps({"party": party, "operator": party is None, "key": key, "sha256": digest}))
        return 0
    who = party if party is not None else "the operators"
    print(f"API key for {who} (shown once; hand it over on a secure channel):\n\n  {key}\n")
    print(f"SHA-256 for {setting}:\n\n  {digest}\n")
    print(f"In the configuration:\n\n{toml}\n\nor in the environment:\n\n  {env}")
    return 0


def _keys_file(args: argparse.Namespace) -> tuple[Path | None, str | None]:
    """(keys file, journal URL) from ``--file`` and the configuration."""
    try:
        settings = load_settings(args.config if args.config.exists() else None, os.environ)
    except GatewayError as exc:
        print(f"asw-gateway keys: the configuration is not usable: {exc.detail}", file=sys.stderr)
        return (args.file, None)
    path = args.file or (
        Path(settings.http.operator_keys_file) if settings.http.operator_keys_file else None
    )
    return path, journal_url(settings.journal)


def _who(args: argparse.Namespace) -> str:
    if args.by.strip():
        return str(args.by.strip())
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "unknown (cli)"


def _audit(url: str | None, args: argparse.Namespace, action: str, key: OperatorKey) -> bool:
    """Append the key change to the journal's audit log; False (and a warning) if it cannot."""
    if url is None:
        return False

    async def append() -> None:
        journal = await open_journal(url)
        try:
            await audit_of(journal).audit_append(
                AuditEntry(
                    at=datetime.now(UTC),
                    actor=_who(args),
                    role="admin",
                    key_id=None,
                    action=action,
                    target=key.key_id,
                    reason=args.reason.strip() or None,
                    detail=f"{key.name} ({key.role})",
                )
            )
        finally:
            await journal.close()

    try:
        asyncio.run(append())
    except (GatewayError, OSError, ValueError) as exc:
        print(f"asw-gateway keys: not in the audit log ({url}): {exc}", file=sys.stderr)
        return False
    return True


def _no_file() -> int:
    print(
        "asw-gateway keys: no operator keys file: set http.operator_keys_file or pass --file",
        file=sys.stderr,
    )
    return 2


def run_add(args: argparse.Namespace) -> int:
    """Add a named operator key and print it once."""
    path, url = _keys_file(args)
    if path is None:
        return _no_file()
    try:
        entry, key = add_key(path, name=args.name, role=args.role, now=datetime.now(UTC))
    except (ValueError, GatewayError) as exc:
        print(f"asw-gateway keys: {exc}", file=sys.stderr)
        return 2
    audited = _audit(url, args, "key-added", entry)
    if args.json:
        print(json.dumps({**entry.public(), "key": key, "audited": audited}))
        return 0
    print(f"Operator key {entry.key_id} for {entry.name} ({entry.role}), shown once:\n\n  {key}\n")
    print(f"Stored (salted SHA-256) in {path}; the gateway picks it up within a second.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """List the operator keys: id, name, role, created, revoked."""
    path, _ = _keys_file(args)
    if path is None:
        return _no_file()
    try:
        entries = read_keys(path)
    except GatewayError as exc:
        print(f"asw-gateway keys: {exc.detail}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"operators": [e.public() for e in entries]}))
        return 0
    print(f"{'KEY ID':<10} {'ROLE':<9} {'CREATED':<26} {'REVOKED':<26} NAME")
    for e in entries:
        print(f"{e.key_id:<10} {e.role:<9} {e.created_at:<26} {e.revoked_at or '-':<26} {e.name}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Revoke an operator key; it stays listed, marked revoked."""
    path, url = _keys_file(args)
    if path is None:
        return _no_file()
    try:
        entry = revoke_key(path, args.key_id, now=datetime.now(UTC))
    except LookupError as exc:
        print(f"asw-gateway keys: {exc.args[0]}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"asw-gateway keys: {exc.detail}", file=sys.stderr)
        return 2
    _audit(url, args, "key-revoked", entry)
    print(f"Revoked {entry.key_id} ({entry.name}, {entry.role}) at {entry.revoked_at}.")
    return 0
