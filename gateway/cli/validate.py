"""``asw-gateway validate``: check documents against their schema and business rules."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.core.parsing import parse
from gateway.core.validation import Validator
from gateway.errors import Finding, GatewayError
from gateway.schema_files import shipped_xsd_dir

DEFAULT_XSD_DIR = shipped_xsd_dir()
EX_NOINPUT = 66
"""A file or folder named on the command line does not exist (sysexits EX_NOINPUT)."""


def expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to check, paths that do not exist): folders give their *.xml files, sorted."""
    files: list[Path] = []
    missing: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.xml") if p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            missing.append(path)
    return files, missing


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` subcommand."""
    parser = subparsers.add_parser(
        "validate",
        help="validate documents (XSD, then business rules) and list the findings",
        description="Exit 0 when every file is valid (warnings allowed), 1 when one is not, "
        f"{EX_NOINPUT} when a file or folder named does not exist (nothing is checked then), "
        "2 when the schemas cannot be loaded. A folder means every *.xml file under it.",
    )
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE_OR_FOLDER")
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    parser.add_argument(
        "--xsd-dir",
        type=Path,
        default=DEFAULT_XSD_DIR,
        help=f"schema directory (default {DEFAULT_XSD_DIR})",
    )
    parser.add_argument(
        "--at", type=datetime.fromisoformat, help="check as of this ISO date-time (default now)"
    )
    parser.set_defaults(handler=run)


def check_file(path: Path, validator: Validator, now: datetime) -> dict[str, Any]:
    """The JSON result for one file: ``{file, document_type, valid, findings}``."""
    try:
        root = parse(path.read_bytes())
        report = validator.check(root, now=now)
    except OSError as exc:
        finding = Finding(severity="error", code="unreadable", message=str(exc.strerror))
        return {
            "file": str(path),
            "document_type": None,
            "valid": False,
            "findings": [finding.to_json()],
        }
    except GatewayError as exc:
        finding = Finding(severity="error", code=exc.code, message=exc.detail)
        return {
            "file": str(path),
            "document_type": None,
            "valid": False,
            "findings": [finding.to_json()],
        }
    return {
        "file": str(path),
        "document_type": report.document_type.value,
        "valid": report.valid,
        "findings": [f.to_json() for f in report.findings],
    }


def format_text(result: dict[str, Any]) -> str:
    """A file's findings for people: one line each, with the Form D box and source line."""
    findings = result["findings"]
    verdict = "valid" if result["valid"] else "INVALID"
    kind = result["document_type"] or "unknown"
    head = f"{result['file']}: {verdict} ({kind}"
    lines = [head + (f", {len(findings)} finding(s))" if findings else ")")]
    for f in findings:
        box = f" [box {f['box']}]" if f["box"] else ""
        line = f" line {f['line']}" if f["line"] else ""
        lines.append(f"  {f['severity']:<7} {f['code']}{box}{line}: {f['message']}")
        if f["hint"]:
            lines.append(f"          hint: {f['hint']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every file is valid (warnings allowed), 1 otherwise, 2 on a bad schema dir,
    66 when a path does not exist."""
    files, missing = expand(list(args.files))
    if missing:
        for path in missing:
            print(f"asw-gateway validate: no such file or folder: {path}", file=sys.stderr)
        return EX_NOINPUT
    if not files:
        print("asw-gateway validate: no *.xml files in the folders named", file=sys.stderr)
        return EX_NOINPUT
    try:
        validator = Validator.load(args.xsd_dir)
    except (OSError, etree.LxmlError) as exc:
        print(f"asw-gateway: cannot load the schemas in {args.xsd_dir}: {exc}", file=sys.stderr)
        return 2
    now: datetime = args.at or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    results = [check_file(path, validator, now) for path in files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(format_text(result) for result in results))
    return 0 if all(result["valid"] for result in results) else 1
