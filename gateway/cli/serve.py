"""``asw-gateway serve``: run the HTTP API and the delivery workers."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from gateway.app import serve
from gateway.errors import SettingsError
from gateway.logs import configure_logging
from gateway.settings import DEFAULT_CONFIG, load_settings
from gateway.startup import preflight, startup_message
from gateway.workers import place_worker, run_workers


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser("serve", help="run the gateway (HTTP API and delivery)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration file"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="number of gateway processes (default: node.workers from the configuration)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the settings, configure logging and serve until stopped."""
    try:
        settings = load_settings(args.config, os.environ)
    except SettingsError as exc:
        print(f"asw-gateway: {exc.detail}", file=sys.stderr)
        return 2
    configure_logging(settings.log)
    # Everything the configuration names is checked before anything starts; every problem
    # found is printed in one message and the exit is non-zero, within seconds.
    problems = asyncio.run(preflight(settings))
    if problems:
        print(startup_message(problems), file=sys.stderr)
        return 2
    workers = args.workers if args.workers is not None else settings.node.workers
    if workers > 1:
        return run_workers(args.config, workers, settings)
    place_worker(settings.node, 0, 1)
    asyncio.run(serve(settings))
    return 0
