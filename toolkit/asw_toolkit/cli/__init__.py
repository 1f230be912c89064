"""``asw-toolkit``: the testers' command line (send, replay, conformance, samples, NSW simulator).

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler takes the
parsed arguments and returns the process exit code. The product's own commands (serve, sign,
verify, validate, keys, pki expiring) stay in ``asw-gateway``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "asw_toolkit.cli.send",
    "asw_toolkit.cli.replay",
    "asw_toolkit.cli.conformance",
    "asw_toolkit.cli.samples",
    "asw_toolkit.cli.simulate",
    "asw_toolkit.cli.pki",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every tester subcommand."""
    parser = argparse.ArgumentParser(
        prog="asw-toolkit",
        description="Testing tools for the ASEAN Single Window message gateway.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asw-toolkit`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
