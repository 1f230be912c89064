"""``asw-gateway send FILE --url URL``: submit one document and print its message id.

With ``--wait`` it then follows ``GET /v1/messages/{id}`` until the message is delivered
(DELIVERED, RECEIPTED or ANSWERED: exit 0), fails for good (DEAD or REJECTED: exit 1) or
``--timeout`` passes (exit 75), and prints the timeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.testkit import SUCCESS_STATES, Restamper, timeline_lines

EX_TEMPFAIL = 75
WAIT_FAILED = frozenset({"DEAD", "REJECTED", "DUPLICATE"})


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
    document = args.file.read_bytes()
    if args.new_id or args.sign_with:
        restamper = Restamper(keep_ids=not args.new_id, sign_with=args.sign_with)
        document = restamper.prepare(document).body
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
