"""``asw-gateway journal purge [--dry-run]``: archive, then purge, what retention lets go.

Runs the same job the gateway runs every ``journal.retention_check_seconds`` (see
``gateway.retention``), once, against the configured journal; prints the report as JSON.
Exit codes: 0 done, 2 configuration refused (e.g. a retention shorter than three years without
``journal.allow_short_retention``), 3 the journal could not be reached or written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.errors import GatewayError, SettingsError
from gateway.journal import open_journal
from gateway.logs import configure_logging
from gateway.retention import RetentionReport, run_retention
from gateway.settings import DEFAULT_CONFIG, journal_url, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``journal`` subcommand."""
    parser = subparsers.add_parser("journal", help="journal maintenance (retention)")
    commands = parser.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    purge = commands.add_parser(
        "purge", help="archive then purge entries older than journal.retention_days"
    )
    purge.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration file"
    )
    purge.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be archived and purged; change nothing",
    )
    purge.add_argument(
        "--archive-dir", type=Path, default=None, help="override journal.archive_dir"
    )
    purge.set_defaults(handler=run_purge)


async def _purge(args: argparse.Namespace) -> RetentionReport:
    settings = load_settings(args.config, os.environ)
    configure_logging(settings.log, stream=sys.stderr)  # stdout carries the report alone
    journal = await open_journal(
        journal_url(settings.journal), op_timeout=settings.journal.op_timeout_seconds
    )
    try:
        return await run_retention(
            journal,
            settings.journal,
            now=datetime.now(UTC),
            dry_run=args.dry_run,
            archive_dir=args.archive_dir,
            actor="cli",
        )
    finally:
        await journal.close()


def run_purge(args: argparse.Namespace) -> int:
    """Run one retention pass and print its report."""
    try:
        report = asyncio.run(_purge(args))
    except SettingsError as exc:
        print(f"asw-gateway journal purge: {exc.detail}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"asw-gateway journal purge: {exc.code}: {exc.detail}", file=sys.stderr)
        return 3
    print(json.dumps(report.to_json(), indent=2))
    return 0
