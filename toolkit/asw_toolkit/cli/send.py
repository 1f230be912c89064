"""``asw-toolkit send FILE --url URL``: submit one document and print its message id.

With ``--wait`` it then follows ``GET /v1/messages/{id}`` until the message is delivered
(DELIVERED, RECEIPTED or ANSWERED: exit 0), fails for good (DEAD or REJECTED: exit 1) or
``--timeout`` passes (exit 75), and prints the timeline.

The API key is read from ``--api-key-file FILE`` or the ``ASW_API_KEY`` environment variable;
``--api-key KEY`` still works but puts the key where ``ps`` and shell history can see it.
``replay`` and ``conformance`` also take ``--api-keys FILE`` (or ``ASW_API_KEYS_FILE``): one
key per sending country, ``CC=key`` per line, for a hub that checks who sends.

With ``--new-id`` the fresh message id is printed first, even when the gateway refuses the
document, so that the refusal can be looked up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from asw_toolkit.testkit import SUCCESS_STATES, Restamper, timeline_lines

EX_TEMPFAIL = 75
EX_NOINPUT = 66
WAIT_FAILED = frozenset({"DEAD", "DISCARDED", "REJECTED", "DUPLICATE"})
API_KEY_ENV = "ASW_API_KEY"
API_KEYS_ENV = "ASW_API_KEYS_FILE"


class ApiKeyError(ValueError):
    """The API key file cannot be read or is empty."""


def add_api_key_options(parser: argparse.ArgumentParser) -> None:
    """``--api-key-file`` and ``--api-key`` (the environment's ``ASW_API_KEY`` otherwise)."""
    parser.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help=f"read the sending party's API key from FILE (else ${API_KEY_ENV} is used)",
    )
    parser.add_argument(
        "--api-key",
        help=f"the API key itself (visible to other users in ps; prefer ${API_KEY_ENV} or "
        "--api-key-file)",
    )


def add_api_keys_option(parser: argparse.ArgumentParser) -> None:
    """``--api-keys FILE``: one key per sending country (``$ASW_API_KEYS_FILE`` otherwise)."""
    parser.add_argument(
        "--api-keys",
        type=Path,
        metavar="FILE",
        help="one API key per sending country, CC=key per line (# comments); each document "
        f"goes with its sender's key (else ${API_KEYS_ENV} names the file)",
    )


def api_keys_from(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The per-sender keys of ``--api-keys FILE`` or ``$ASW_API_KEYS_FILE`` (empty: none)."""
    path: Path | None = getattr(args, "api_keys", None)
    if path is None and environ.get(API_KEYS_ENV, "").strip():
        path = Path(environ[API_KEYS_ENV].strip())
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiKeyError(f"cannot read the API keys file {path}: {exc}") from exc
    keys: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        country, sep, key = (part.strip() for part in line.partition("="))
        if not sep or len(country) != 2 or not country.isalpha() or not key:
            raise ApiKeyError(f"{path} line {number}: expected CC=key, e.g. SG=asw_sg_...")
        keys[country.upper()] = key
    if not keys:
        raise ApiKeyError(f"the API keys file {path} names no key")
    return keys


def api_key_from(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The API key from ``--api-key-file``, ``--api-key`` or ``ASW_API_KEY``, in that order."""
    path: Path | None = getattr(args, "api_key_file", None)
    if path is not None:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiKeyError(f"cannot read the API key file {path}: {exc}") from exc
        if not key:
            raise ApiKeyError(f"the API key file {path} is empty")
        return key
    given: str | None = getattr(args, "api_key", None)
    return given or environ.get(API_KEY_ENV, "").strip() or None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``send`` subcommand."""
    parser = subparsers.add_parser("send", help="submit one document to a gateway")
    parser.add_argument("file", type=Path, help="the XML document to submit")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    add_api_key_options(parser)
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
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the message until delivered (exit 0), dead or rejected (exit 1), or "
        "--timeout (exit 75), and print its timeline",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long --wait waits (60)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Submit the file; print the message id (exit 0) or the refusal (exit 1, or 75 to retry)."""
    try:
        api_key = api_key_from(args, os.environ)
    except ApiKeyError as exc:
        print(f"send: {exc}", file=sys.stderr)
        return 2
    try:
        document = args.file.read_bytes()
    except OSError as exc:
        print(f"send: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EX_NOINPUT
    if args.new_id or args.sign_with:
        restamper = Restamper(keep_ids=not args.new_id, sign_with=args.sign_with)
        prepared = restamper.prepare(document)
        document = prepared.body
        if args.new_id and prepared.message_id:
            print(prepared.message_id, flush=True)  # before sending: known even if refused
    headers = {"Content-Type": "application/xml", "Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
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
    if not args.new_id:
        print(body["message_id"])
    if args.wait:
        return wait_for(args.url, body["message_id"], headers, timeout=args.timeout)
    return 0


def wait_for(url: str, message_id: str, headers: dict[str, str], *, timeout: float) -> int:
    """Poll the message until it reaches a final state; print its timeline."""
    deadline = time.monotonic() + timeout
    interval = 0.2
    message: dict[str, object] | None = None
    shown = 0
    while True:
        request = urllib.request.Request(  # noqa: S310  (the operator's own gateway)
            f"{url.rstrip('/')}/v1/messages/{message_id}",
            headers={k: v for k, v in headers.items() if k != "Content-Type"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                message = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError) as exc:
            print(f"cannot follow the message: {exc}", file=sys.stderr)
        if message is not None:
            lines = timeline_lines(message)
            for line in lines[shown:]:
                print(line)
            shown = len(lines)
            state = str(message.get("state"))
            if state in SUCCESS_STATES:
                return 0
            if state in WAIT_FAILED:
                error = message.get("last_error")
                print(f"{state}" + (f": {error}" if error else ""), file=sys.stderr)
                return 1
        if time.monotonic() >= deadline:
            last = message.get("state") if message else "unknown"
            print(f"still {last} after {timeout:g} s", file=sys.stderr)
            return EX_TEMPFAIL
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)
