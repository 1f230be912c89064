"""``asw-toolkit replay PATH... --url URL``: send sample traffic and say what became of it.

Each replayed message gets a fresh message id, document number and creation time (unless
``--keep-ids``), is signed again with ``--sign-with``, is followed until delivered, and is judged
against the ``manifest.json`` of its samples folder. Which files, how many, how fast:

- no ``--count``/``--duration``/``--loop``: every file once, in order;
- ``--count N``: N messages, going round the files as often as needed;
- ``--duration S``: round the files until S seconds have passed;
- ``--loop``: round the files until interrupted (Ctrl-C stops sending and still reports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asw_toolkit.cli.send import (
    ApiKeyError,
    add_api_key_options,
    add_api_keys_option,
    api_key_from,
    api_keys_from,
)
from asw_toolkit.testkit import (
    SUCCESS_STATES,
    DeliveryTracker,
    Expectations,
    GatewayClient,
    Outcome,
    Prepared,
    Progress,
    Restamper,
    Summary,
    collect_files,
    judge,
    write_report,
)

EX_USAGE = 2
EX_TEMPFAIL = 75
UNREACHABLE_STOP = 3
"""Consecutive submissions the gateway never answered, with no answer before, that stop a run."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="replay sample documents against a gateway and report every outcome",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="files and folders (default: samples)"
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    add_api_key_options(parser)
    add_api_keys_option(parser)
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="N", help="messages per second (0: no limit)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="submissions in flight (4)"
    )
    how_many = parser.add_mutually_exclusive_group()
    how_many.add_argument("--count", type=int, metavar="N", help="send N messages")
    how_many.add_argument("--duration", type=float, metavar="S", help="send for S seconds")
    parser.add_argument("--loop", action="store_true", help="go round the files until stopped")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    parser.add_argument(
        "--keep-ids",
        action="store_true",
        help="send the documents as they are (same message ids: tests idempotency)",
    )
    parser.add_argument(
        "--sign-with",
        type=Path,
        metavar="DIR",
        help="sign each document with its sender country's key (DIR/<CC>/signer.key)",
    )
    parser.add_argument(
        "--test", action="store_true", help="mark every replayed message TestIndicator=true"
    )
    parser.add_argument(
        "--delivery-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for deliveries after sending (30; 0: do not follow)",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    """What to replay, where and how."""

    url: str
    files: tuple[Path, ...]
    api_key: str | None = None
    api_keys: dict[str, str] = field(default_factory=dict)
    rate: float = 0.0
    concurrency: int = 4
    count: int | None = None
    duration: float | None = None
    loop: bool = False
    keep_ids: bool = False
    sign_with: Path | None = None
    test: bool = False
    delivery_timeout: float = 30.0
    show_progress: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """The outcomes of a replay, their summary and the exit code they call for."""

    outcomes: tuple[Outcome, ...]
    summary: Summary
    started_at: datetime
    stopped_unreachable: bool = False

    @property
    def exit_code(self) -> int:
        """0 all as expected and delivered; 1 something differs or failed; 75 unreachable."""
        summary = self.summary
        if summary.sent and summary.unreachable == summary.sent:
            return EX_TEMPFAIL
        if summary.differ or summary.failed or summary.undelivered or summary.unreachable:
            return 1
        return 0

    def report(self, options: ReplayOptions) -> dict[str, Any]:
        """The JSON report: options, summary and every message's outcome."""
        return {
            "tool": "asw-toolkit replay",
            "url": options.url,
            "started_at": self.started_at.isoformat(),
            "options": {
                "files": len(options.files),
                "rate": options.rate,
                "concurrency": options.concurrency,
                "count": options.count,
                "duration": options.duration,
                "loop": options.loop,
                "keep_ids": options.keep_ids,
                "signed": options.sign_with is not None,
                "test": options.test,
            },
            "summary": asdict(self.summary),
            "messages": [o.to_json() for o in self.outcomes],
        }


def run(args: argparse.Namespace) -> int:
    """Replay, print the summary, write the report; the exit code says whether all went well."""
    try:
        files = collect_files(args.paths or [Path("samples")])
    except FileNotFoundError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EX_USAGE
    if not files:
        print("replay: no XML files found", file=sys.stderr)
        return EX_USAGE
    if args.concurrency < 1 or args.rate < 0:
        print("replay: --concurrency must be at least 1 and --rate not negative", file=sys.stderr)
        return EX_USAGE
    try:
        api_key = api_key_from(args, os.environ)
        api_keys = api_keys_from(args, os.environ)
    except ApiKeyError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EX_USAGE
    options = ReplayOptions(
        url=args.url,
        files=tuple(files),
        api_key=api_key,
        api_keys=api_keys,
        rate=args.rate,
        concurrency=args.concurrency,
        count=args.count,
        duration=args.duration,
        loop=args.loop,
        keep_ids=args.keep_ids,
        sign_with=args.sign_with,
        test=args.test,
        delivery_timeout=args.delivery_timeout,
    )
    result = asyncio.run(replay(options))
    if result.stopped_unreachable:
        print(
            f"replay: stopped early: the gateway at {options.url} did not answer "
            f"{UNREACHABLE_STOP} submissions in a row",
            file=sys.stderr,
        )
    for line in result.summary.lines():
        print(line)
    for outcome in (o for o in result.outcomes if o.as_expected is False):
        print(f"  DIFFERS {outcome.file}: expected {outcome.expected}; got {_got(outcome)}")
    if args.report:
        write_report(args.report, result.report(options))
        print(f"report: {args.report}")
    return result.exit_code


def _got(outcome: Outcome) -> str:
    if outcome.status is None:
        return f"unreachable ({outcome.detail})"
    if outcome.status == 202:
        warns = f", warns {', '.join(outcome.warnings)}" if outcome.warnings else ""
        return "202 accepted" + warns
    found = f" [{', '.join(outcome.findings)}]" if outcome.findings else ""
    return f"{outcome.status} {outcome.code}{found}"


def _schedule(options: ReplayOptions) -> Iterator[Path]:
    files = options.files
    if options.count is not None:
        return itertools.islice(itertools.cycle(files), options.count)
    if options.duration is not None or options.loop:
        return itertools.cycle(files)
    return iter(files)


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


async def replay(options: ReplayOptions) -> ReplayResult:
    """Replay ``options.files`` against the gateway and follow what was accepted."""
    return await _Run(options).run()


class _Run:
    """One replay: a producer prepares documents in order, workers submit them, a follower
    polls deliveries in batches meanwhile."""

    def __init__(self, options: ReplayOptions) -> None:
        self.options = options
        self.expectations = Expectations.for_files(options.files)
        self.restamper = Restamper(
            keep_ids=options.keep_ids, sign_with=options.sign_with, test=options.test
        )
        self.tracker = DeliveryTracker()
        self.outcomes: list[Outcome] = []
        self.stop = asyncio.Event()
        self.sending_done = asyncio.Event()
        self.queue: asyncio.Queue[tuple[int, Path, Prepared] | None] = asyncio.Queue(
            maxsize=options.concurrency * 2
        )
        self.cache: dict[Path, bytes] = {}
        total = options.count
        if total is None and options.duration is None and not options.loop:
            total = len(options.files)
        self.progress = Progress(total) if options.show_progress else None
        self.t0 = time.monotonic()
        self.unanswered = 0
        self.answered = False
        self.stopped_unreachable = False

    def counts(self) -> dict[str, int]:
        """Running counts for the progress bar."""
        outcomes = self.outcomes
        return {
            "accepted": sum(o.status == 202 for o in outcomes),
            "refused": sum(o.status is not None and o.status != 202 for o in outcomes),
            "delivered": sum(d.state in SUCCESS_STATES for d in self.tracker.done.values()),
            "differ": sum(o.as_expected is False for o in outcomes),
        }

    async def produce(self) -> None:
        """Prepare documents in order (references need that), at the asked rate."""
        options = self.options
        for index, path in enumerate(_schedule(options)):
            if self.stop.is_set():
                break
            if options.duration is not None and time.monotonic() - self.t0 >= options.duration:
                break
            if options.rate > 0:
                delay = self.t0 + index / options.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if path not in self.cache:
                self.cache[path] = path.read_bytes()
            prepared = await asyncio.to_thread(self.restamper.prepare, self.cache[path])
            await self.queue.put((index, path, prepared))
        for _ in range(options.concurrency):
            await self.queue.put(None)

    async def work(self, client: GatewayClient) -> None:
        """Submit what the producer prepared and note the answers."""
        while (item := await self.queue.get()) is not None:
            index, path, prepared = item
            answer = await client.submit(prepared.body, sender=prepared.sender)
            self._note_reachability(answer.status is not None)
            expectation = self.expectations.get(path)
            self.outcomes.append(
                Outcome(
                    index=index,
                    file=expectation.file if expectation else _display(path),
                    message_id=answer.message_id or prepared.message_id,
                    original_message_id=prepared.original_message_id,
                    status=answer.status,
                    code=answer.code,
                    resubmitted=answer.resubmitted,
                    findings=answer.findings,
                    warnings=answer.warnings,
                    seconds_to_answer=round(answer.seconds, 4),
                    signed=prepared.signed,
                    expected=expectation.describe() if expectation else None,
                    as_expected=judge(expectation, answer, prepared),
                    note=prepared.note,
                    detail=answer.detail,
                    test=answer.test,
                )
            )
            if answer.accepted and answer.message_id and self.options.delivery_timeout > 0:
                self.tracker.track(answer.message_id.lower())
            if self.progress is not None:
                self.progress.update(len(self.outcomes), self.counts())

    def _note_reachability(self, answered: bool) -> None:
        """Stop sending when the gateway has never answered and N submissions in a row failed."""
        if answered:
            self.answered = True
            self.unanswered = 0
            return
        self.unanswered += 1
        if not self.answered and self.unanswered >= UNREACHABLE_STOP and not self.stop.is_set():
            self.stopped_unreachable = True
            self.stop.set()

    async def follow(self, client: GatewayClient) -> None:
        """Poll deliveries once a second while sending."""
        while not self.sending_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sending_done.wait(), timeout=1.0)
            await self.tracker.poll(client)

    async def send_all(self, client: GatewayClient) -> None:
        """The producer and the workers, until everything is sent."""
        try:
            workers = (self.work(client) for _ in range(self.options.concurrency))
            await asyncio.gather(self.produce(), *workers)
        finally:
            self.sending_done.set()

    async def run(self) -> ReplayResult:
        """Send, follow, summarise."""
        started_at = datetime.now(UTC)
        options = self.options
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self.stop.set)
        async with GatewayClient(
            options.url,
            api_key=options.api_key,
            api_keys=options.api_keys,
            connections=options.concurrency + 2,
        ) as client:
            await asyncio.gather(self.send_all(client), self.follow(client))
            seconds = time.monotonic() - self.t0
            if options.delivery_timeout > 0 and not self.stopped_unreachable:
                await self.tracker.wait(client, timeout=options.delivery_timeout)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        if self.progress is not None:
            self.progress.update(len(self.outcomes), self.counts(), force=True)
            self.progress.finish()
        final = tuple(
            _with_delivery(o, self.tracker) for o in sorted(self.outcomes, key=lambda o: o.index)
        )
        return ReplayResult(
            outcomes=final,
            summary=Summary.of(final, seconds=seconds, followed=options.delivery_timeout > 0),
            started_at=started_at,
            stopped_unreachable=self.stopped_unreachable,
        )


def _with_delivery(outcome: Outcome, tracker: DeliveryTracker) -> Outcome:
    if outcome.message_id is None or outcome.status != 202:
        return outcome
    delivery = tracker.done.get(outcome.message_id.lower())
    if delivery is None:
        return outcome
    return replace(outcome, state=delivery.state, seconds_to_delivery=delivery.seconds)


__all__: Sequence[str] = ("ReplayOptions", "ReplayResult", "register", "replay", "run")
