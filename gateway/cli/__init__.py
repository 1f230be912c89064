"""``asw-gateway``: the command line of the gateway.

The operator's commands only; the testers' tools (send, replay, conformance, samples,
simulate-nsw, pki init) are ``asw-toolkit`` (``toolkit/``). Each subcommand lives in its own
module exposing ``register(subparsers)``; its handler takes the parsed arguments and returns the
process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gateway.cli.moved import moved_command, moved_handler

COMMAND_MODULES = (
    "gateway.cli.serve",
    "gateway.cli.pki",
    "gateway.cli.sign",
    "gateway.cli.verify",
    "gateway.cli.validate",
    "gateway.cli.keys",
    "gateway.cli.journal",
    "gateway.cli.moved",  # send, replay, conformance, samples, simulate-nsw: now `asw-toolkit`
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
    moved = moved_command(sys.argv[1:] if argv is None else list(argv))
    if moved is not None:  # before parsing: the moved command's own options mean nothing here
        return moved_handler(moved)(argparse.Namespace())
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
