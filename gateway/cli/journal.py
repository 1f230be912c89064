"""``asw-gateway journal``: the journal's schema and backups.

- ``journal status``: the journal's schema version beside this gateway's, and its identity;
  exit 0 when they match (or no journal exists yet), 1 otherwise.
- ``journal migrate``: bring the journal to this gateway's schema version (one transaction;
  stop the gateways and take a backup first).
- ``journal backup DEST``: copy the journal while the gateway runs (SQLite: online backup into
  a new file; PostgreSQL: ``pg_dump --format=custom``).
- ``journal purge [--dry-run] [--archive-dir DIR]``: archive, then purge, what is older than
  ``journal.retention_days`` (the job the gateway runs every ``retention_check_seconds``, see
  ``gateway.retention``), once; prints the report as JSON. Exit 2: configuration refused (e.g.
  a retention under three years without ``journal.allow_short_retention``); 3: the journal
  could not be reached or written.

The journal is the configuration's ``[journal] url`` (``--config``), or ``--url``.
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
    """Add the ``journal`` subcommand and its own subcommands."""
    parser = subparsers.add_parser(
        "journal",
        help="the journal's schema version, migrations and backups",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="schema version and identity")
    migrate = actions.add_parser("migrate", help="bring the schema to this gateway's version")
    backup = actions.add_parser("backup", help="copy the journal while the gateway runs")
    backup.add_argument("dest", type=Path, help="the backup file to write (must not exist)")
    for action in (status, migrate, backup):
        where = action.add_mutually_exclusive_group()
        where.add_argument(
            "--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration file"
        )
        where.add_argument("--url", help="the journal URL (instead of the configuration's)")
    purge = actions.add_parser(
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
    status.set_defaults(handler=run_status)
    migrate.set_defaults(handler=run_migrate)
    backup.set_defaults(handler=run_backup)


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    return journal_url(load_settings(args.config, os.environ).journal)


def _fail(message: str, code: int = 1) -> int:
    print(f"asw-gateway journal: {message}", file=sys.stderr)
    return code


def run_status(args: argparse.Namespace) -> int:
    """Print the schema version and identity; 0 when this gateway can use the journal."""
    from gateway.journal.migrations import schema_status  # noqa: PLC0415

    try:
        status = schema_status(_url(args))
    except SettingsError as exc:
        return _fail(exc.detail, 2)
    except (GatewayError, ValueError) as exc:
        return _fail(exc.detail if isinstance(exc, GatewayError) else str(exc))
    current = "none yet" if status.current is None else str(status.current)
    print(
        f"schema version {current}; this gateway needs {status.expected}; "
        f"journal id {status.journal_id or '-'}"
    )
    if status.problem:
        print(status.problem)
        return 1
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    """Migrate the journal; print from which version to which."""
    from gateway.journal.migrations import migrate  # noqa: PLC0415

    try:
        before, after = migrate(_url(args))
    except SettingsError as exc:
        return _fail(exc.detail, 2)
    except (GatewayError, ValueError) as exc:
        return _fail(exc.detail if isinstance(exc, GatewayError) else str(exc))
    if before is None:
        print(f"journal created at schema version {after}")
    elif before == after:
        print(f"journal already at schema version {after}: nothing to do")
    else:
        print(f"journal migrated from schema version {before} to {after}")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    """Write a backup of the journal to ``dest``."""
    from gateway.journal.backup import backup  # noqa: PLC0415

    try:
        written = backup(_url(args), args.dest)
    except SettingsError as exc:
        return _fail(exc.detail, 2)
    except (GatewayError, ValueError, OSError) as exc:
        return _fail(exc.detail if isinstance(exc, GatewayError) else str(exc))
    print(f"journal backed up to {written} ({written.stat().st_size} bytes)")
    return 0


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
            node=settings.node.name,
        )
    finally:
        await journal.close()


def run_purge(args: argparse.Namespace) -> int:
    """Run one retention pass and print its report."""
    try:
        report = asyncio.run(_purge(args))
    except SettingsError as exc:
        return _fail(f"purge: {exc.detail}", 2)
    except GatewayError as exc:
        return _fail(f"purge: {exc.code}: {exc.detail}", 3)
    print(json.dumps(report.to_json(), indent=2))
    return 0
