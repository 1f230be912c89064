"""``asw-gateway keys new --party SG``: make an API key and print it once, with its SHA-256.

The gateway stores only the SHA-256 (``parties.<CC>.api_key_sha256``, or
``http.operator_api_key_sha256`` for ``--operator``); the key itself is shown once, here, and
must reach the party over a secure channel. Two digests may be listed during a rollover.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from gateway.auth import key_digest
from gateway.core.envelope import MEMBER_STATES

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
