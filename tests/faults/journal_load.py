"""A separate process that writes to a journal (or polls its pull inbox) for the fault scenarios.

    python -m tests.faults.journal_load write <journal-url> <seconds> [<workers>] [<op-timeout>]
    python -m tests.faults.journal_load poll <journal-url> <receiver> <idle-seconds> [<start-file>]

``write`` records new messages from ``workers`` concurrent senders for ``seconds``; a sender
whose message is refused sends the same message again (as a client would after a 503) until it
is accepted or the time is up. One JSON line per answer on stdout: ``{"id", "code", "status",
"started", "ended"}`` (wall-clock seconds), ``code`` ``accepted``, ``resubmitted`` or the
gateway error code; anything that is not a ``GatewayError`` is ``internal-error`` (a 500).

``poll`` lists the receiver's inbox, fetches every document it sees (lease 60 s) and acknowledges
it, until the inbox stays empty for ``idle-seconds``; one JSON line ``{"fetched": id}`` per
document this poller got.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from gateway.errors import GatewayError
from gateway.journal import AcceptResult, Journal, MessageRecord, inbox_of, open_journal

PAYLOAD_TEMPLATE = "<EFormD><Id>{}</Id><Pad>{}</Pad></EFormD>"


def record_for(message_id: str) -> tuple[MessageRecord, bytes]:
    """A Form D record from SG to TH with its payload."""
    payload = PAYLOAD_TEMPLATE.format(message_id, "x" * 512).encode()
    return (
        MessageRecord(
            message_id=message_id,
            sender="SG",
            receiver="TH",
            document_type="EFD",
            document_id=f"SG-{message_id[:12]}",
            function_code="9",
            referenced_message_id=None,
            test=False,
            size=len(payload),
            digest=hashlib.sha256(payload).hexdigest(),
            received_at=datetime.now(UTC),
        ),
        payload,
    )


def emit(**fields: object) -> None:
    """One JSON line, flushed at once (the parent may read it while we run)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _sender(journal: Journal, until: float) -> None:
    message_id = str(uuid.uuid4())
    while time.time() < until:
        record, payload = record_for(message_id)
        started = time.time()
        try:
            outcome = await journal.record_accepted(record, payload, at=datetime.now(UTC))
        except GatewayError as exc:
            emit(
                id=message_id,
                code=exc.code,
                status=exc.http_status,
                started=started,
                ended=time.time(),
            )
            await asyncio.sleep(0.05)
            continue
        except Exception as exc:  # noqa: BLE001  (what a handler would turn into a 500)
            emit(
                id=message_id,
                code="internal-error",
                status=500,
                started=started,
                ended=time.time(),
                detail=type(exc).__name__,
            )
            await asyncio.sleep(0.05)
            continue
        code = "accepted" if outcome.result is AcceptResult.ACCEPTED else "resubmitted"
        emit(id=message_id, code=code, status=202, started=started, ended=time.time())
        message_id = str(uuid.uuid4())
        await asyncio.sleep(0.01)


async def write(url: str, seconds: float, workers: int, op_timeout: float) -> None:
    """Record messages from ``workers`` senders for ``seconds``."""
    journal = await open_journal(url, op_timeout=op_timeout)
    emit(ready=True)
    until = time.time() + seconds
    try:
        await asyncio.gather(*(_sender(journal, until) for _ in range(workers)))
    finally:
        await journal.close()


def _wait_for_file(path: Path) -> None:
    """Block until ``path`` exists."""
    while not path.exists():
        time.sleep(0.01)


async def poll(url: str, receiver: str, idle_seconds: float, start_file: str | None) -> None:
    """Fetch and acknowledge every document this poller can get; with ``start_file``, only
    once that file exists (so that pollers started one after another begin together)."""
    journal = await open_journal(url)
    inbox = inbox_of(journal)
    emit(ready=True)
    if start_file is not None:
        await asyncio.to_thread(_wait_for_file, Path(start_file))
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < idle_seconds:
            now = datetime.now(UTC)
            items = await inbox.inbox_waiting(receiver, at=now, limit=20)
            if not items:
                await asyncio.sleep(0.02)
                continue
            idle_since = time.monotonic()
            for item in items:
                document = await inbox.inbox_fetch(
                    receiver, item.message_id, at=datetime.now(UTC), lease=timedelta(seconds=60)
                )
                if document is None:
                    continue
                emit(fetched=item.message_id)
                await inbox.inbox_ack(receiver, item.message_id, at=datetime.now(UTC))
    finally:
        await journal.close()


def main(argv: list[str]) -> None:
    """Run ``write`` or ``poll`` with the command line's arguments."""
    # The gateway's logs go to stderr: stdout carries only the answers.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    mode, url = argv[0], argv[1]
    if mode == "write":
        workers = int(argv[3]) if len(argv) > 3 else 4
        op_timeout = float(argv[4]) if len(argv) > 4 else 5.0
        asyncio.run(write(url, float(argv[2]), workers, op_timeout))
    elif mode == "poll":
        asyncio.run(poll(url, argv[2], float(argv[3]), argv[4] if len(argv) > 4 else None))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
