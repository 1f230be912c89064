"""``asw-gateway pki``: make a development PKI, and report what is about to expire."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.core.pki import KeyType, build_dev_pki
from gateway.errors import SettingsError
from gateway.pki_files import default_ca_keys_dir, write_dev_pki
from gateway.trust_loader import load_trust_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pki init`` and ``pki expiring`` subcommands."""
    parser = subparsers.add_parser("pki", help="development PKI and trust store reports")
    commands = parser.add_subparsers(dest="pki_command", required=True, metavar="PKI_COMMAND")
    init = commands.add_parser(
        "init", help="create a development PKI for the ten member states (never for production)"
    )
    init.add_argument("directory", type=Path, help="where to write DIR/<CC>/ and DIR/bad/")
    init.add_argument(
        "--ca-keys",
        type=Path,
        default=None,
        help="where to write the CA private keys (default: the sibling DIR-ca-keys/, mode 0700; "
        "never inside the trust directory)",
    )
    init.add_argument(
        "--key-type",
        choices=[k.value for k in KeyType],
        default=KeyType.RSA2048.value,
        help="key algorithm of every certificate (default rsa2048)",
    )
    init.set_defaults(handler=run_init)
    expiring = commands.add_parser(
        "expiring", help="list CA certificates and CRLs that expire within N days"
    )
    expiring.add_argument("--trust", type=Path, required=True, help="trust directory DIR/<CC>/")
    expiring.add_argument("--days", type=int, default=30, help="reporting window (default 30)")
    expiring.set_defaults(handler=run_expiring)


def run_init(args: argparse.Namespace) -> int:
    """Generate the PKI and write it; prints file names, never keys."""
    pki = build_dev_pki(now=datetime.now(UTC), key_type=KeyType(args.key_type))
    ca_keys = args.ca_keys if args.ca_keys is not None else default_ca_keys_dir(args.directory)
    written = write_dev_pki(pki, args.directory, ca_keys=ca_keys)
    print(
        f"development PKI ({args.key_type}) for {', '.join(pki.countries)} written to "
        f"{args.directory} ({len(written)} certificates and CRLs, leaf keys beside them as "
        f"*.key); CA keys in {ca_keys}. For development only."
    )
    return 0


def run_expiring(args: argparse.Namespace) -> int:
    """Exit 0 when nothing expires within the window, 1 when something does, 2 on bad input."""
    try:
        store = load_trust_store(args.trust)
    except SettingsError as exc:
        print(f"asw-gateway: {exc.detail}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    found = store.expiring(now=now, within=timedelta(days=args.days))
    for expiry in found:
        print(expiry.describe(now))
    if not found:
        print(f"nothing expires within {args.days} days")
    return 1 if found else 0
