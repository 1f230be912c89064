"""``asw-gateway send FILE --url URL``: submit one document and print its message id."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from gateway.core.documents import document_id_of, restamp
from gateway.core.envelope import document_type_of, read_envelope
from gateway.core.parsing import parse
from gateway.core.signatures import load_signing_key, sign

EX_TEMPFAIL = 75


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``send`` subcommand."""
    parser = subparsers.add_parser("send", help="submit one document to a gateway")
    parser.add_argument("file", type=Path, help="the XML document to submit")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    parser.add_argument("--api-key", help="API key of the sending party, if the gateway asks")
    parser.add_argument(
        "--new-id",
        action="store_true",
        help="send a fresh copy: new message id, document number and creation time "
        "(breaks an existing signature)",
    )
    parser.add_argument(
        "--sign-with",
        type=Path,
        metavar="DIR",
        help="sign with the sender country's key from a development PKI (DIR/<CC>/signer.key)",
    )
    parser.set_defaults(handler=run)


def fresh_copy(document: bytes) -> bytes:
    """The document as a new one: fresh message id, document number and creation time."""
    root = parse(document)
    old_number = document_id_of(root, document_type_of(root))
    suffix = uuid.uuid4().hex[:8].upper()
    copy = restamp(
        root,
        message_id=str(uuid.uuid4()),
        document_id=f"{old_number}-{suffix}" if old_number else None,
        created=datetime.now(UTC),
    )
    return bytes(etree.tostring(copy, xml_declaration=True, encoding="UTF-8"))


def signed_with_dev_key(document: bytes, pki_dir: Path) -> bytes:
    """The document signed with its sender country's signer key from ``pki_dir``."""
    root = parse(document)
    country = read_envelope(root).sender.country
    key = load_signing_key(
        (pki_dir / country / "signer.key").read_bytes(),
        (pki_dir / country / "signer.pem").read_bytes(),
    )
    return bytes(etree.tostring(sign(root, key), xml_declaration=True, encoding="UTF-8"))


def run(args: argparse.Namespace) -> int:
    """Submit the file; print the message id (exit 0) or the refusal (exit 1, or 75 to retry)."""
    document = args.file.read_bytes()
    if args.new_id:
        document = fresh_copy(document)
    if args.sign_with:
        document = signed_with_dev_key(document, args.sign_with)
    headers = {"Content-Type": "application/xml", "Accept": "application/json"}
    if args.api_key:
        headers["X-API-Key"] = args.api_key
    request = urllib.request.Request(  # noqa: S310  (the URL is the operator's own gateway)
        args.url.rstrip("/") + "/v1/messages", data=document, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        problem = json.loads(exc.read() or b"{}")
        print(
            f"refused ({exc.code} {problem.get('code', '?')}): {problem.get('detail', '')}",
            file=sys.stderr,
        )
        for finding in problem.get("findings", []):
            box = f"box {finding['box']}: " if finding.get("box") else ""
            print(f"  - {finding['code']}: {box}{finding['message']}", file=sys.stderr)
        return EX_TEMPFAIL if exc.code >= 500 else 1
    except urllib.error.URLError as exc:
        print(f"cannot reach the gateway at {args.url}: {exc.reason}", file=sys.stderr)
        return EX_TEMPFAIL
    print(body["message_id"])
    return 0
