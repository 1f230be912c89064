"""``asw-toolkit conformance --url URL``: play the samples manifest and the protocol scenarios.

Every sample in ``manifest.json`` is sent as a fresh message (valid ones must be accepted and
delivered, invalid ones refused with exactly their finding codes), then the scenarios: the same
message id twice, the same document under a new message id, a replacement and a cancellation,
an unsigned and a tampered document, a test message, and a re-transmission request (OCP Rule
29(3)) by the e-Form D's receiver (re-delivered) and by another party (refused), and a
rejection (Rule 13(3)) by the receiver (delivered), by another party (refused) and naming another
document type than the rejected message's (refused), of an e-Form D and of an Origin Declaration
(Rule 30), a retroactive check (Rule 18) ended by the requester's origin determination
(delivered; from another party refused), and a certified-exporter lookup (answered and
delivered) whose answer from a party not asked is refused. It prints
expected against actual for each check and exits 0 only when all match.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
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
    Answer,
    DeliveryTracker,
    Expectation,
    GatewayClient,
    Prepared,
    Restamper,
    judge,
    tampered,
    write_report,
)
from gateway.core.envelope import DocumentType, document_type_of
from gateway.core.parsing import parse
from gateway.errors import GatewayError

BASE = "formd/valid/sg-th-basic.xml"
REPLACEMENT = "formd/valid/sg-th-replacement.xml"
CANCELLATION = "formd/valid/sg-th-cancellation.xml"
RETRANSMISSION = "retransmission/valid/th-sg-formd-lost.xml"
REJECTION = "rejection/valid/th-sg-formd-items-rejected.xml"
DECLARATION = "origin-declaration/valid/sg-my-orchid-foods.xml"
OD_REJECTION = "rejection/valid/my-sg-origin-declaration-rejected.xml"
CE_LOOKUP = "ce-lookup/valid/my-sg-orchid-foods-request.xml"
CE_LOOKUP_ANSWER = "ce-lookup/valid/sg-my-orchid-foods-response.xml"
RETRO_REQUEST = "verification/valid/th-sg-retroactive-check-request.xml"
DETERMINATION = "determination/valid/th-sg-retroactive-check-determination.xml"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``conformance`` subcommand."""
    parser = subparsers.add_parser(
        "conformance",
        help="play the samples manifest and protocol scenarios; table of expected vs actual",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    add_api_key_options(parser)
    add_api_keys_option(parser)
    parser.add_argument(
        "--samples", type=Path, default=Path("samples"), metavar="DIR",
        help="samples folder with manifest.json (default: samples)",
    )  # fmt: skip
    parser.add_argument(
        "--sign-with", type=Path, metavar="DIR",
        help="sign with each sender country's key (DIR/<CC>/signer.key); also enables the "
        "signature scenarios (the gateway must require signatures)",
    )  # fmt: skip
    parser.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    parser.add_argument(
        "--delivery-timeout", type=float, default=30.0, metavar="S",
        help="how long accepted valid samples may take to be delivered (30)",
    )  # fmt: skip
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One row of the table."""

    name: str
    expected: str
    actual: str
    ok: bool | None
    """None: skipped."""
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """One document sent during the run (for the report and for checking the journal)."""

    check: str
    message_id: str | None
    status: int | None
    code: str
    resubmitted: bool
    test: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceResult:
    """Every check, every submission."""

    checks: tuple[Check, ...]
    submissions: tuple[Submission, ...]
    started_at: datetime

    @property
    def passed(self) -> int:
        """Checks that matched."""
        return sum(c.ok is True for c in self.checks)

    @property
    def failed(self) -> int:
        """Checks that did not."""
        return sum(c.ok is False for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 only when every check that ran matched."""
        return 1 if self.failed or not self.passed else 0

    def table(self) -> list[str]:
        """Expected against actual, one line per check."""
        width = max((len(c.name) for c in self.checks), default=10) + 2
        exp = max((len(c.expected) for c in self.checks), default=10) + 2
        act = max((len(c.actual) for c in self.checks), default=10) + 2
        lines = [f"{'CHECK':<{width}}{'EXPECTED':<{exp}}{'ACTUAL':<{act}}RESULT"]
        for c in self.checks:
            verdict = "skip" if c.ok is None else ("ok" if c.ok else "DIFFERS")
            lines.append(f"{c.name:<{width}}{c.expected:<{exp}}{c.actual:<{act}}{verdict}")
        skipped = sum(c.ok is None for c in self.checks)
        lines.append(
            f"{len(self.checks)} checks: {self.passed} ok, {self.failed} differ, {skipped} skipped"
        )
        return lines

    def report(self, url: str) -> dict[str, Any]:
        """The JSON report."""
        return {
            "tool": "asw-toolkit conformance",
            "url": url,
            "started_at": self.started_at.isoformat(),
            "passed": self.passed,
            "failed": self.failed,
            "checks": [asdict(c) for c in self.checks],
            "submissions": [asdict(s) for s in self.submissions],
        }


def run(args: argparse.Namespace) -> int:
    """Run every check, print the table, write the report."""
    manifest = args.samples / "manifest.json"
    if not manifest.is_file():
        print(f"conformance: {manifest} not found (give --samples DIR)", file=sys.stderr)
        return 2
    try:
        api_key = api_key_from(args, os.environ)
        api_keys = api_keys_from(args, os.environ)
    except ApiKeyError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(
        conformance(
            url=args.url,
            samples=args.samples,
            sign_with=args.sign_with,
            api_key=api_key,
            api_keys=api_keys,
            delivery_timeout=args.delivery_timeout,
        )
    )
    for line in result.table():
        print(line)
    if args.report:
        write_report(args.report, result.report(args.url))
        print(f"report: {args.report}")
    return result.exit_code


async def conformance(
    *,
    url: str,
    samples: Path,
    sign_with: Path | None,
    api_key: str | None = None,
    api_keys: dict[str, str] | None = None,
    delivery_timeout: float = 30.0,
) -> ConformanceResult:
    """Play the manifest and the scenarios against the gateway at ``url``."""
    started_at = datetime.now(UTC)
    entries = [
        Expectation(file=str(e["file"]), valid=bool(e["valid"]), codes=tuple(sorted(e["codes"])))
        for e in json.loads((samples / "manifest.json").read_text(encoding="utf-8"))
    ]
    player = _Player(Restamper(sign_with=sign_with), samples)
    async with GatewayClient(url, api_key=api_key, api_keys=api_keys, connections=6) as client:
        player.client = client
        rows = await player.manifest(entries)
        rows += await player.scenarios(signatures=sign_with is not None)
        await player.tracker.wait(client, timeout=delivery_timeout)
    checks = [player.with_delivery(row) for row in rows]
    return ConformanceResult(
        checks=tuple(checks), submissions=tuple(player.submissions), started_at=started_at
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    check: Check
    follow: str | None = None
    """Message id whose delivery decides the check (valid samples)."""


class _Player:
    def __init__(self, restamper: Restamper, samples: Path) -> None:
        self.restamper = restamper
        self.samples = samples
        self.tracker = DeliveryTracker()
        self.submissions: list[Submission] = []
        self._client: GatewayClient | None = None

    @property
    def client(self) -> GatewayClient:
        if self._client is None:
            raise RuntimeError("no client")
        return self._client

    @client.setter
    def client(self, value: GatewayClient) -> None:
        self._client = value

    async def send(self, check: str, prepared: Prepared | bytes) -> Answer:
        body = prepared.body if isinstance(prepared, Prepared) else prepared
        sender = prepared.sender if isinstance(prepared, Prepared) else None
        answer = await self.client.submit(body, sender=sender)
        message_id = answer.message_id or (
            prepared.message_id if isinstance(prepared, Prepared) else None
        )
        self.submissions.append(
            Submission(
                check=check,
                message_id=message_id,
                status=answer.status,
                code=answer.code,
                resubmitted=answer.resubmitted,
                test=bool(answer.test),
            )
        )
        return answer

    def read(self, file: str) -> bytes:
        return (self.samples / file).read_bytes()

    async def manifest(self, entries: list[Expectation]) -> list[_Row]:
        prepared = [self.restamper.prepare(self.read(e.file)) for e in entries]
        limit = asyncio.Semaphore(4)

        async def one(entry: Expectation, doc: Prepared) -> _Row:
            async with limit:
                answer = await self.send(entry.file, doc)
            ok = judge(entry, answer, doc)
            actual = answer.describe()
            if doc.unsignable and answer.code == "unsigned":
                actual += f" (no key for {doc.sender})"
            follow = None
            if entry.valid and answer.accepted and answer.message_id:
                follow = answer.message_id.lower()
                self.tracker.track(follow)
            expected = entry.describe() + (", delivered" if entry.valid else "")
            check = Check(
                name=entry.file, expected=expected, actual=actual, ok=ok,
                message_id=answer.message_id or doc.message_id,
            )  # fmt: skip
            return _Row(check=check, follow=follow)

        pairs = list(zip(entries, prepared, strict=True))
        # Register updates first, one at a time in manifest order: later documents (an Origin
        # Declaration, an ACDD's AEO ids) are checked against the registers they build.
        registers = [_updates_a_register(self.read(e.file)) for e, _ in pairs]
        rows = [await one(e, d) for (e, d), first in zip(pairs, registers, strict=True) if first]
        rest = [one(e, d) for (e, d), first in zip(pairs, registers, strict=True) if not first]
        return rows + list(await asyncio.gather(*rest))

    async def scenarios(self, *, signatures: bool) -> list[_Row]:
        rows: list[_Row] = []
        base = self.read(BASE)
        first = self.restamper.prepare(base)
        a1 = await self.send("same message id twice", first)
        a2 = await self.send("same message id twice", first)
        rows.append(_scenario(
            "scenario: same message id twice",
            "202, then 202 resubmitted=true",
            f"{a1.status}, then {a2.status} resubmitted={str(a2.resubmitted).lower()}",
            a1.accepted and not a1.resubmitted and a2.accepted and a2.resubmitted,
            first.message_id,
        ))  # fmt: skip
        again = self.restamper.prepare(
            base, message_id=str(uuid.uuid4()), document_id=first.document_id
        )
        dup = await self.send("same document, new message id", again)
        rows.append(_scenario(
            "scenario: same document, new message id", "409 duplicate-business-key",
            dup.describe(), dup.status == 409 and dup.code == "duplicate-business-key",
            again.message_id,
        ))  # fmt: skip
        for name, file, function in (
            ("replacement", REPLACEMENT, "5"),
            ("cancellation", CANCELLATION, "1"),
        ):
            doc = self.restamper.prepare(self.read(file))  # references ``first`` by now
            answer = await self.send(name, doc)
            rows.append(_scenario(
                f"scenario: {name} (function {function}) of it", "202 accepted",
                answer.describe(), answer.accepted, doc.message_id,
            ))  # fmt: skip
        rows += await self._signature_scenarios(base, enabled=signatures)
        rows.append(await self._test_indicator(base))
        rows += await self._retransmission(first.message_id)
        rows += await self._rejection(first.message_id)
        rows += await self._origin_declaration_rejection()
        rows += await self._register_lookup()
        rows += await self._determination(first.message_id)
        return rows

    async def _register_lookup(self) -> list[_Row]:
        """Issue 18 §4: MY asks SG's certified-exporter register (the gateway answers from the
        register the manifest's updates built, or SG's NSW does); VN may not answer it."""
        query = self.restamper.prepare(self.read(CE_LOOKUP))
        rows = [await self._delivered("certified-exporter lookup", query)]
        first = rows[0].follow
        other = (
            _referring_to(self.read(CE_LOOKUP_ANSWER), first)
            .replace(b"<cm:SenderParty><cm:CountryCode>SG<", b"<cm:SenderParty><cm:CountryCode>VN<")
            .replace(b"<cl:ExportCountryCode>SG<", b"<cl:ExportCountryCode>VN<")
        )
        doc = self.restamper.prepare(other)
        name = "certified-exporter lookup answered by another party"
        rows.append(await self._not_allowed(name, doc))
        return rows

    async def _delivered(self, name: str, doc: Prepared) -> _Row:
        """Send ``doc``: the scenario ``name`` expects it accepted, then delivered (followed)."""
        answer = await self.send(name, doc)
        follow = answer.message_id.lower() if answer.accepted and answer.message_id else None
        if follow is not None:
            self.tracker.track(follow)
        return _Row(check=Check(
            name=f"scenario: {name}", expected="202 accepted, delivered",
            actual=answer.describe(), ok=answer.accepted, message_id=doc.message_id,
        ), follow=follow)  # fmt: skip

    async def _not_allowed(self, name: str, doc: Prepared) -> _Row:
        """Send ``doc``: the scenario ``name`` expects it refused, 403 reply-not-allowed."""
        answer = await self.send(name, doc)
        return _scenario(
            f"scenario: {name}", "403 reply-not-allowed", answer.describe(),
            answer.status == 403 and answer.code == "reply-not-allowed", doc.message_id,
        )  # fmt: skip

    async def _determination(self, first: str | None) -> list[_Row]:
        """OCP Rule 18: TH asks SG to check the e-Form D ``first``; TH's origin determination
        ends the check (delivered); SG, which was asked, may not send one."""
        request = self.restamper.prepare(_referring_to(self.read(RETRO_REQUEST), first))
        asked = await self.send("retroactive check request", request)
        rows = [_scenario(
            "scenario: retroactive check request by the receiver", "202 accepted",
            asked.describe(), asked.accepted, request.message_id,
        )]  # fmt: skip
        check = asked.message_id.lower() if asked.accepted and asked.message_id else None
        determination = _referring_to(self.read(DETERMINATION), check)
        doc = self.restamper.prepare(determination)
        rows.append(await self._delivered("origin determination by the requester", doc))
        swapped = determination.replace(
            b"<cm:SenderParty><cm:CountryCode>TH<", b"<cm:SenderParty><cm:CountryCode>SG<"
        ).replace(
            b"<cm:ReceiverParty><cm:CountryCode>SG<", b"<cm:ReceiverParty><cm:CountryCode>TH<"
        )
        doc = self.restamper.prepare(swapped)
        name = "origin determination by the party asked"
        rows.append(await self._not_allowed(name, doc))
        return rows

    async def _rejection(
        self,
        first: str | None,
        *,
        sample: str = REJECTION,
        of: str = "",
        receiver: bytes = b"TH",
        stranger: bytes = b"MY",
    ) -> list[_Row]:
        """OCP Rules 13(3), 30: the receiver of ``first`` (TH for the e-Form D) rejects it; a
        ``stranger`` may not."""
        notice = _referring_to(self.read(sample), first)
        doc = self.restamper.prepare(notice)
        rows = [await self._delivered(f"rejection{of} by the receiver", doc)]
        other = notice.replace(
            b"<cm:SenderParty><cm:CountryCode>" + receiver + b"<",
            b"<cm:SenderParty><cm:CountryCode>" + stranger + b"<",
        )
        doc = self.restamper.prepare(other)
        name = f"rejection{of} by another party"
        rows.append(await self._not_allowed(name, doc))
        # The TypeCode must name the type of the message rejected (rejection-type-mismatch).
        named = b"<rj:TypeCode>EFD<" if b"<rj:TypeCode>OD<" in notice else b"<rj:TypeCode>OD<"
        wrong = re.sub(rb"<rj:TypeCode>[A-Z]+<", named, notice)
        doc = self.restamper.prepare(wrong)
        name = f"rejection{of} naming another document type"
        answer = await self.send(name, doc)
        rows.append(_scenario(
            f"scenario: {name}", "422 business-rule-violation [rejection-type-mismatch]",
            answer.describe(),
            answer.status == 422 and answer.findings == ("rejection-type-mismatch",),
            doc.message_id,
        ))  # fmt: skip
        return rows

    async def _origin_declaration_rejection(self) -> list[_Row]:
        """OCP Rule 30: MY rejects an Origin Declaration SG sent it (read against the register
        the manifest's updates built); TH may not."""
        declaration = self.restamper.prepare(self.read(DECLARATION))
        sent = await self.send("Origin Declaration to be rejected", declaration)
        first = sent.message_id.lower() if sent.accepted and sent.message_id else None
        rows = [_scenario(
            "scenario: Origin Declaration to be rejected", "202 accepted", sent.describe(),
            sent.accepted, declaration.message_id,
        )]  # fmt: skip
        return rows + await self._rejection(
            first, sample=OD_REJECTION, of=" of an Origin Declaration", receiver=b"MY",
            stranger=b"TH",
        )  # fmt: skip

    async def _retransmission(self, first: str | None) -> list[_Row]:
        """OCP Rule 29(3): TH asks again for the e-Form D sent to it (``first``), then MY."""
        request = _referring_to(self.read(RETRANSMISSION), first)
        doc = self.restamper.prepare(request)
        rows = [await self._delivered("re-transmission request by the receiver", doc)]
        other = request.replace(
            b"<cm:SenderParty><cm:CountryCode>TH<", b"<cm:SenderParty><cm:CountryCode>MY<"
        )
        doc = self.restamper.prepare(other)
        answer = await self.send("re-transmission request by another party", doc)
        rows.append(_scenario(
            "scenario: re-transmission request by another party",
            "403 retransmission-not-allowed", answer.describe(),
            answer.status == 403 and answer.code == "retransmission-not-allowed",
            doc.message_id,
        ))  # fmt: skip
        return rows

    async def _signature_scenarios(self, base: bytes, *, enabled: bool) -> list[_Row]:
        if not enabled:
            return [
                _scenario(f"scenario: {name}", expected, "not run (needs --sign-with)", None, None)
                for name, expected in (
                    ("unsigned document", "422 unsigned"),
                    ("tampered after signing", "422 digest-mismatch"),
                )
            ]
        unsigned = self.restamper.prepare(base, sign=False)
        answer = await self.send("unsigned document", unsigned)
        rows = [_scenario(
            "scenario: unsigned document", "422 unsigned", answer.describe(),
            answer.status == 422 and answer.code == "unsigned", unsigned.message_id,
        )]  # fmt: skip
        signed = self.restamper.prepare(base)
        answer = await self.send("tampered after signing", tampered(signed.body))
        rows.append(_scenario(
            "scenario: tampered after signing", "422 digest-mismatch", answer.describe(),
            answer.status == 422 and answer.code == "digest-mismatch", signed.message_id,
        ))  # fmt: skip
        return rows

    async def _test_indicator(self, base: bytes) -> _Row:
        doc = self.restamper.prepare(base, test=True)
        answer = await self.send("test message", doc)
        listed: Callable[[str], Awaitable[list[dict[str, Any]]]] = lambda flag: (  # noqa: E731
            self.client.messages(test=flag, limit="1000")
        )
        in_test = answer.message_id in {m["message_id"] for m in await listed("true")}
        in_live = answer.message_id in {m["message_id"] for m in await listed("false")}
        ok = answer.accepted and answer.test is True and in_test and not in_live
        actual = (
            f"{answer.status} test={str(answer.test).lower()}, "
            f"listed under test={'true' if in_test else 'false' if in_live else 'neither'}"
        )
        return _scenario(
            "scenario: TestIndicator=true", "202 test=true, listed under test=true",
            actual, ok, doc.message_id,
        )  # fmt: skip

    def with_delivery(self, row: _Row) -> Check:
        check = row.check
        if row.follow is None or not check.ok:
            return check
        delivery = self.tracker.done.get(row.follow)
        state = delivery.state if delivery else "not delivered in time"
        ok = delivery is not None and delivery.state in SUCCESS_STATES
        return Check(
            name=check.name, expected=check.expected, actual=f"{check.actual} -> {state}",
            ok=ok, message_id=check.message_id,
        )  # fmt: skip


def _referring_to(document: bytes, message_id: str | None) -> bytes:
    """``document`` with its header's ReferencedMessageID set to ``message_id`` (if given)."""
    if message_id is None:
        return document
    return re.sub(
        rb"<cm:ReferencedMessageID>[^<]*</cm:ReferencedMessageID>",
        f"<cm:ReferencedMessageID>{message_id}</cm:ReferencedMessageID>".encode(),
        document,
    )


def _scenario(
    name: str, expected: str, actual: str, ok: bool | None, message_id: str | None
) -> _Row:
    return _Row(
        check=Check(name=name, expected=expected, actual=actual, ok=ok, message_id=message_id)
    )


def _updates_a_register(data: bytes) -> bool:
    """True for a certified-exporter register update or an AEO status notification."""
    try:
        doc_type = document_type_of(parse(data))
    except GatewayError:
        return False
    return doc_type in (DocumentType.CE_REGISTER_UPDATE, DocumentType.AEO_STATUS)
