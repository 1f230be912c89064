"""Copies of a running journal: SQLite's online backup, PostgreSQL's ``pg_dump``.

SQLite: ``sqlite3``'s backup API (the C library's ``sqlite3_backup``) copies the database page
by page from a read transaction of its own. In WAL mode that reader blocks no writer, so the
gateway keeps accepting while the copy is taken; the copy is one consistent moment of the
journal (every commit before the backup's read began, none after). The copy is written to a
temporary file beside ``dest``, checked (``PRAGMA quick_check``), made owner-only (it holds every
payload) and renamed into place.

PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot, without stopping writers),
restored with ``pg_restore --no-owner --dbname NEW``; see docs/journal.md.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

from gateway.errors import JournalUnavailable

PAGES_PER_STEP = 4096
"""Pages copied per step (16 MiB at 4 KiB pages); between steps writers are never held up."""


def backup(url: str, dest: Path) -> Path:
    """Copy the journal at ``url`` to ``dest`` while it runs; the path written.

    ``dest`` must not exist (a backup never overwrites one). ``JournalUnavailable`` when the
    journal cannot be read or the copy fails (nothing is left at ``dest`` then).
    """
    if dest.exists():
        raise FileExistsError(f"{dest} exists; a backup never overwrites one")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return backup_sqlite(Path(parts.path), dest)
    if parts.scheme in ("postgresql", "postgres"):
        return backup_postgres(url, dest)
    raise ValueError(f"unknown journal URL scheme {parts.scheme!r} (sqlite or postgresql)")


def backup_sqlite(source: Path, dest: Path) -> Path:
    """Online backup of the SQLite journal at ``source`` into a new file ``dest``."""
    if not source.exists():
        raise JournalUnavailable(f"There is no journal at {source}.")
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, timeout=30)
        try:
            out = sqlite3.connect(partial)
            try:
                src.backup(out, pages=PAGES_PER_STEP)
                check = out.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise JournalUnavailable(f"The backup of {source} failed its check: {check}")
                # One file, no -wal beside it: a copy that opens anywhere.
                out.execute("PRAGMA journal_mode = DELETE")
            finally:
                out.close()
        finally:
            src.close()
        os.replace(partial, dest)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise JournalUnavailable(f"The backup of {source} failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest


def backup_postgres(url: str, dest: Path) -> Path:
    """``pg_dump --format=custom`` of the journal's database into ``dest``."""
    from gateway.journal.postgres import split_url  # noqa: PLC0415  (needs psycopg)

    conninfo, _, _ = split_url(url)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        subprocess.run(  # noqa: S603  (fixed program, no shell)
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(partial), conninfo],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError as exc:
        raise JournalUnavailable("pg_dump is not installed (PostgreSQL's client tools)") from exc
    except subprocess.CalledProcessError as exc:
        partial.unlink(missing_ok=True)
        reason = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc
        raise JournalUnavailable(f"pg_dump failed: {reason}") from exc
    partial.chmod(0o600)
    os.replace(partial, dest)
    return dest
