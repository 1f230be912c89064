"""``asw-toolkit pki init``: make a development PKI for the ten member states (never production).

Reporting on a real trust store (``pki expiring``) is an operator's job and stays in
``asw-gateway``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from asw_toolkit.dev_pki import KeyType, build_dev_pki, default_ca_keys_dir, write_dev_pki


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pki init`` subcommand."""
    parser = subparsers.add_parser("pki", help="development PKI")
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
