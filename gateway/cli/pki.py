"""``asw-gateway pki expiring``: report the CA certificates and CRLs that are about to expire.

Making a development PKI is tester tooling: ``asw-toolkit pki init`` (``gateway.cli.moved``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.cli.moved import moved_handler
from gateway.errors import SettingsError
from gateway.trust_loader import load_trust_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pki expiring`` subcommand (and ``pki init``, which names its new home)."""
    parser = subparsers.add_parser("pki", help="trust store reports")
    commands = parser.add_subparsers(dest="pki_command", required=True, metavar="PKI_COMMAND")
    expiring = commands.add_parser(
        "expiring", help="list CA certificates and CRLs that expire within N days"
    )
    expiring.add_argument("--trust", type=Path, required=True, help="trust directory DIR/<CC>/")
    expiring.add_argument("--days", type=int, default=30, help="reporting window (default 30)")
    expiring.set_defaults(handler=run_expiring)
    init = commands.add_parser(
        "init", help="moved: use `asw-toolkit pki init` (the testers' tools)", add_help=False
    )
    init.add_argument("rest", nargs=argparse.REMAINDER)
    init.set_defaults(handler=moved_handler("pki init"))


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
