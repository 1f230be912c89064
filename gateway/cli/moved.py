"""The tester commands that moved to ``asw-toolkit``: each prints where it went and exits 2.

``send``, ``replay``, ``conformance``, ``samples``, ``simulate-nsw`` and ``pki init`` belong to
the tools package (``toolkit/``, distribution ``asw-toolkit``), which a production install
leaves out. The old names stay here only to point the way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

MOVED_COMMANDS = ("send", "replay", "conformance", "samples", "simulate-nsw")
EXIT_MOVED = 2


def moved_handler(command: str) -> Callable[[argparse.Namespace], int]:
    """A handler that names ``asw-toolkit <command>`` and fails."""

    def handler(_args: argparse.Namespace) -> int:
        print(
            f"asw-gateway {command}: this command moved to the testers' tools; run "
            f"`asw-toolkit {command}` instead (installed by `make setup`, or "
            f"`pip install -e toolkit/`).",
            file=sys.stderr,
        )
        return EXIT_MOVED

    return handler


def moved_command(argv: Sequence[str]) -> str | None:
    """The moved command that ``argv`` asks for (``"pki init"`` included), or ``None``."""
    if argv and argv[0] in MOVED_COMMANDS:
        return argv[0]
    if list(argv[:2]) == ["pki", "init"]:
        return "pki init"
    return None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """List each moved command in ``--help``; ``main`` answers them before parsing."""
    for command in MOVED_COMMANDS:
        parser = subparsers.add_parser(
            command, help=f"moved: use `asw-toolkit {command}`", add_help=False
        )
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(handler=moved_handler(command))
