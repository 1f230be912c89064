"""``asw-gateway``: the command line of the gateway.

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler takes the
parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "gateway.cli.serve",
    "gateway.cli.send",
    "gateway.cli.pki",
    "gateway.cli.sign",
    "gateway.cli.verify",
    "gateway.cli.simulate",
    "gateway.cli.validate",
    "gateway.cli.replay",
    "gateway.cli.conformance",
    "gateway.cli.samples",
    "gateway.cli.keys",
    "gateway.cli.journal",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="asw-gateway",
        description="ASEAN Single Window message gateway.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asw-gateway`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
