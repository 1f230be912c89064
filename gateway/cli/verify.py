"""``asw-gateway verify``: check documents' signatures against the per-country trust store."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.core.parsing import parse
from gateway.core.signatures import Verified, verify
from gateway.core.trust import TrustStore
from gateway.errors import GatewayError, SettingsError
from gateway.trust_loader import load_trust_store

DEFAULT_TRUST = Path("certs/dev")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify", help="verify documents' signatures and that the signer belongs to the sender"
    )
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE")
    parser.add_argument(
        "--trust",
        type=Path,
        default=DEFAULT_TRUST,
        help=f"trust directory DIR/<CC>/ (default {DEFAULT_TRUST})",
    )
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    parser.add_argument(
        "--soft-fail",
        action="append",
        default=[],
        metavar="CC",
        help="accept with a warning when no current CRL covers this country's signer",
    )
    parser.add_argument(
        "--at", type=datetime.fromisoformat, help="check as of this ISO date-time (default now)"
    )
    parser.set_defaults(handler=run)


def _check(path: Path, store: TrustStore, now: datetime) -> dict[str, Any]:
    try:
        verified: Verified = verify(parse(path.read_bytes()), store, now=now)
    except OSError as exc:
        return {"file": str(path), "valid": False, "code": "unreadable", "detail": exc.strerror}
    except GatewayError as exc:
        return {"file": str(path), "valid": False, "code": exc.code, "detail": exc.detail}
    signer = verified.signer
    return {
        "file": str(path),
        "valid": True,
        "code": "ok",
        "signer": {
            "subject": signer.subject,
            "country": signer.country,
            "fingerprint": signer.fingerprint,
            "chain": list(signer.chain),
        },
        "warnings": list(verified.warnings),
    }


def _print_text(result: dict[str, Any]) -> None:
    if not result["valid"]:
        print(f"{result['file']}: {result['code']}: {result['detail']}")
        return
    signer = result["signer"]
    print(f"{result['file']}: ok")
    print(f"  signer      {signer['subject']}")
    print(f"  country     {signer['country']}")
    print(f"  fingerprint sha256:{signer['fingerprint']}")
    print(f"  chain       {' <- '.join(signer['chain'])}")
    for warning in result["warnings"]:
        print(f"  warning     {warning}")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every file is validly signed and trusted, 1 otherwise, 2 on a bad trust dir."""
    try:
        store = load_trust_store(args.trust, policies=dict.fromkeys(args.soft_fail, "soft-fail"))
    except SettingsError as exc:
        print(f"asw-gateway: {exc.detail}", file=sys.stderr)
        return 2
    now = args.at or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    results = [_check(path, store, now) for path in args.files]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            _print_text(result)
    return 0 if all(r["valid"] for r in results) else 1
