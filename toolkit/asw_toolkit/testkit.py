"""The integration tester's kit: prepare documents, submit them, follow them, judge and report.

Shared by ``asw-toolkit send``, ``replay`` and ``conformance``:

- ``Restamper`` turns a sample into a fresh message (new message id, document number and creation
  time, references to earlier replayed messages rewritten, optional test indicator) and signs it
  with the sender country's key from a development PKI.
- ``GatewayClient`` speaks the gateway's HTTP API (``POST /v1/messages``, ``GET /v1/messages``).
- ``DeliveryTracker`` follows accepted messages to a final state in batches, through the list
  endpoint, instead of one request per message per tick.
- ``Expectations`` reads a samples ``manifest.json`` and ``judge`` compares an answer with it.
- ``percentile``, ``Outcome`` and ``Summary`` make the report.

Nothing here logs or prints a payload or a key.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from lxml import etree

from gateway.core.documents import document_id_of, restamp
from gateway.core.envelope import NS_COMMON, NS_DSIG, NS_RECEIPT, document_type_of
from gateway.core.parsing import parse
from gateway.core.signatures import SigningKey, sign
from gateway.errors import GatewayError
from gateway.pki_files import read_signing_key

SUCCESS_STATES = frozenset({"DELIVERED", "RECEIPTED", "ANSWERED"})
"""Final states that mean the receiver has the document."""
FAILED_STATES = frozenset({"DEAD", "DISCARDED", "REJECTED", "DUPLICATE"})
"""States that mean the document will not reach the receiver without an operator."""
REFUSAL_WITH_FINDINGS = frozenset({"schema-violation", "business-rule-violation"})
CLOCK_SKEW = timedelta(minutes=5)
MAX_DOCUMENT_NUMBER = 70

_C = f"{{{NS_COMMON}}}"


def _now() -> datetime:
    return datetime.now(UTC)


# --- expectations (samples manifest) ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What a gateway should answer to one sample, from ``manifest.json``."""

    file: str
    valid: bool
    codes: tuple[str, ...]

    def describe(self) -> str:
        """``accepted``, ``accepted, warns x`` or ``refused: a, b``."""
        if self.valid:
            return "accepted" + (f", warns {', '.join(self.codes)}" if self.codes else "")
        return "refused: " + ", ".join(self.codes)


@dataclass(frozen=True, slots=True)
class Expectations:
    """Every manifest found for the files being played, by absolute file path."""

    by_path: Mapping[Path, Expectation]

    @classmethod
    def for_files(cls, files: Iterable[Path]) -> Expectations:
        """Read the ``manifest.json`` in each file's folder or nearest parent that has one."""
        found: dict[Path, Expectation] = {}
        read: set[Path] = set()
        for file in files:
            manifest = _nearest_manifest(file.resolve().parent)
            if manifest is None or manifest in read:
                continue
            read.add(manifest)
            for entry in json.loads(manifest.read_text(encoding="utf-8")):
                path = (manifest.parent / str(entry["file"])).resolve()
                found[path] = Expectation(
                    file=str(entry["file"]),
                    valid=bool(entry["valid"]),
                    codes=tuple(sorted(str(c) for c in entry.get("codes", []))),
                )
        return cls(found)

    def get(self, file: Path) -> Expectation | None:
        """The expectation for ``file``, if a manifest lists it."""
        return self.by_path.get(file.resolve())


def _nearest_manifest(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / "manifest.json").is_file():
            return candidate / "manifest.json"
    return None


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The XML files named, and those under the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.xml") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a file nor a folder")
    return files


# --- preparing documents ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A document ready to send, and what was done to it."""

    body: bytes
    message_id: str | None
    original_message_id: str | None
    sender: str | None
    signed: bool
    document_id: str | None = None
    unsignable: bool = False
    """Signing was asked for, but the development PKI has no key for the sender country."""
    note: str | None = None


class Restamper:
    """Makes fresh copies of documents, remembering which old message id became which new one.

    References (``ReferencedMessageID``, a receipt's ``ReceivedMessageID``) to a message replayed
    earlier through the same ``Restamper`` are rewritten to its new id, so replacements,
    cancellations, answers and receipts point at what this run sent. A creation time that is in
    the future, or has no time zone, is kept: that is what an invalid sample tests.
    """

    def __init__(
        self, *, keep_ids: bool = False, sign_with: Path | None = None, test: bool = False
    ) -> None:
        self.keep_ids = keep_ids
        self.sign_with = sign_with
        self.test = test
        self._keys: dict[str, SigningKey | None] = {}
        self._new_ids: dict[str, str] = {}

    def key_for(self, country: str) -> SigningKey | None:
        """The development PKI's signer key of ``country``, or None when it has none."""
        if self.sign_with is None:
            return None
        if country not in self._keys:
            try:
                key = read_signing_key(self.sign_with, country) if country.isalpha() else None
            except OSError:
                key = None
            self._keys[country] = key
        return self._keys[country]

    def prepare(
        self,
        data: bytes,
        *,
        message_id: str | None = None,
        document_id: str | None = None,
        keep_ids: bool | None = None,
        sign: bool = True,
        test: bool | None = None,
    ) -> Prepared:
        """A fresh copy of ``data`` (or the bytes as they are, when they cannot be read).

        ``message_id`` and ``document_id`` force those values (conformance scenarios).
        """
        keep = self.keep_ids if keep_ids is None else keep_ids
        try:
            root = parse(data)
            document_type = document_type_of(root)
        except GatewayError as exc:
            return Prepared(
                body=data, message_id=None, original_message_id=None, sender=None, signed=False,
                note=f"sent as is ({exc.code})",
            )  # fmt: skip
        header = root.find(f"{_C}MessageHeader")
        original = _text(header, "MessageID")
        sender = _text(header, "SenderParty/" + _C + "CountryCode")
        if header is None or original is None:
            return Prepared(
                body=data, message_id=None, original_message_id=None, sender=sender,
                signed=False, note="sent as is (no message id)",
            )  # fmt: skip
        signed_already = root.find(f"{{{NS_DSIG}}}Signature") is not None
        changes = not keep or message_id is not None or document_id is not None
        changes = changes or (self.test if test is None else test)
        if not changes and (signed_already or self.sign_with is None or not sign):
            return Prepared(
                body=data, message_id=original.lower(), original_message_id=original.lower(),
                sender=sender, signed=signed_already,
                document_id=document_id_of(root, document_type), note="sent as is",
            )  # fmt: skip
        new_id = message_id or (original if keep else str(uuid.uuid4()))
        if not keep and message_id is None:
            self._new_ids[original.lower()] = new_id
        number = document_id_of(root, document_type)
        if document_id is None and number is not None and not keep:
            suffix = uuid.uuid4().hex[:8].upper()
            document_id = f"{number[: MAX_DOCUMENT_NUMBER - len(suffix) - 1]}-{suffix}"
        try:
            root = restamp(
                root,
                message_id=new_id,
                document_id=document_id,
                created=None if keep else self._fresh_created(header),
            )
        except ValueError as exc:
            return Prepared(
                body=data, message_id=original, original_message_id=original, sender=sender,
                signed=False, note=f"sent as is ({exc})",
            )  # fmt: skip
        self._rewrite_references(root)
        if self.test if test is None else test:
            _set_test_indicator(root)
        prepared = self._sign(root, new_id, original, sender, sign=sign)
        return replace(prepared, document_id=document_id or number)

    def _fresh_created(self, header: etree._Element) -> datetime | None:
        text = _text(header, "CreationDateTime")
        try:
            created = datetime.fromisoformat(text or "")
        except ValueError:
            return None
        if created.tzinfo is None or created > _now() + CLOCK_SKEW:
            return None
        return _now().replace(microsecond=0)

    def _rewrite_references(self, root: etree._Element) -> None:
        paths = (
            f"{_C}MessageHeader/{_C}ReferencedMessageID",
            f"{{{NS_RECEIPT}}}Receipt/{{{NS_RECEIPT}}}ReceivedMessageID",
        )
        for path in paths:
            node = root.find(path)
            if node is not None and node.text and node.text.strip().lower() in self._new_ids:
                node.text = self._new_ids[node.text.strip().lower()]

    def _sign(
        self,
        root: etree._Element,
        message_id: str,
        original: str,
        sender: str | None,
        *,
        sign: bool,
    ) -> Prepared:
        had_signature = False
        for old in root.findall(f"{{{NS_DSIG}}}Signature"):
            had_signature = True
            root.remove(old)
        note = None
        key = self.key_for(sender or "") if sign and self.sign_with is not None else None
        unsignable = sign and self.sign_with is not None and key is None
        if key is not None:
            root = _sign_document(root, key)
        elif had_signature:
            note = "was signed; sent unsigned (give --sign-with to sign again)"
        body = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
        return Prepared(
            body=body,
            message_id=message_id.lower(),
            original_message_id=original.lower(),
            sender=sender,
            signed=key is not None,
            unsignable=unsignable,
            note=note or (f"no signing key for {sender}; sent unsigned" if unsignable else None),
        )


def _sign_document(root: etree._Element, key: SigningKey) -> etree._Element:
    return sign(root, key)


def _text(parent: etree._Element | None, path: str) -> str | None:
    if parent is None:
        return None
    node = parent.find(_C + path)
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def _set_test_indicator(root: etree._Element) -> None:
    header = root.find(f"{_C}MessageHeader")
    if header is None:
        return
    node = header.find(f"{_C}TestIndicator")
    if node is None:
        anchor = header.find(f"{_C}ReferencedMessageID")
        if anchor is None:
            anchor = header.find(f"{_C}CreationDateTime")
        node = etree.Element(f"{_C}TestIndicator")
        if anchor is None:
            header.append(node)
        else:
            node.tail = anchor.tail
            anchor.addnext(node)
    node.text = "true"


def tampered(signed: bytes) -> bytes:
    """A signed document with one character of its signed content changed."""
    root = parse(signed)
    for node in root.iter(f"{_C}Name"):
        if node.text:
            node.text = node.text[:-1] + ("X" if node.text[-1] != "X" else "Y")
            return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    raise ValueError("the document has no cm:Name to change")


# --- talking to the gateway ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The gateway's answer to one submission."""

    status: int | None
    """HTTP status; None when the gateway could not be reached."""
    code: str
    """``accepted`` for a 202, the problem ``code`` for a refusal, ``unreachable`` otherwise."""
    message_id: str | None = None
    resubmitted: bool = False
    findings: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    detail: str = ""
    test: bool | None = None
    seconds: float = 0.0

    @property
    def accepted(self) -> bool:
        """True for a 202."""
        return self.status == 202

    def describe(self) -> str:
        """One line: ``202 accepted``, ``202 resubmitted``, ``422 schema-violation [xsd-...]``."""
        if self.status is None:
            return f"unreachable ({self.detail})"
        if self.accepted:
            text = "202 resubmitted" if self.resubmitted else "202 accepted"
            return text + (f", warns {', '.join(self.warnings)}" if self.warnings else "")
        found = f" [{', '.join(self.findings)}]" if self.findings else ""
        return f"{self.status} {self.code}{found}"


class GatewayClient:
    """An HTTP client for one gateway; use as ``async with GatewayClient(url) as client``."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        api_keys: Mapping[str, str] | None = None,
        connections: int = 8,
        timeout: float = 60,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["X-API-Key"] = api_key
        self._keys = {country.upper(): key for country, key in (api_keys or {}).items()}
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GatewayClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers=self._headers,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session."""
        if self._session is None:
            raise RuntimeError("use GatewayClient in an async with block")
        return self._session

    async def submit(self, body: bytes, *, sender: str | None = None) -> Answer:
        """POST the document to /v1/messages; never raises for an HTTP or network failure.

        With a key for ``sender`` (``api_keys``), the document is sent with that party's key:
        a hub refuses a document sent with another party's key.
        """
        started = time.perf_counter()
        headers = {"Content-Type": "application/xml"}
        key = self._keys.get(sender.upper()) if sender else None
        if key:
            headers["X-API-Key"] = key
        try:
            async with self.session.post(
                self.url + "/v1/messages",
                data=body,
                headers=headers,
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(
                status=None,
                code="unreachable",
                detail=str(exc) or type(exc).__name__,
                seconds=time.perf_counter() - started,
            )
        seconds = time.perf_counter() - started
        try:
            answer: dict[str, Any] = json.loads(payload) if payload else {}
        except ValueError:
            answer = {}
        if status == 202:
            return Answer(
                status=status,
                code="accepted",
                message_id=answer.get("message_id"),
                resubmitted=bool(answer.get("resubmitted")),
                warnings=tuple(sorted({str(w.get("code")) for w in answer.get("warnings", [])})),
                test=answer.get("test"),
                seconds=seconds,
            )
        return Answer(
            status=status,
            code=str(answer.get("code") or f"http-{status}"),
            findings=tuple(sorted({str(f.get("code")) for f in answer.get("findings", [])})),
            detail=str(answer.get("detail", ""))[:300],
            seconds=seconds,
        )

    async def message(self, message_id: str) -> dict[str, Any] | None:
        """GET /v1/messages/{id}: state and timeline, or None when unknown."""
        async with self.session.get(f"{self.url}/v1/messages/{message_id}") as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            body: dict[str, Any] = await response.json(content_type=None)
            return body

    async def messages(self, **query: str) -> list[dict[str, Any]]:
        """GET /v1/messages with filters (state, sender, receiver, test, limit, before)."""
        async with self.session.get(self.url + "/v1/messages", params=query) as response:
            response.raise_for_status()
            body = await response.json(content_type=None)
            messages: list[dict[str, Any]] = body.get("messages", [])
            return messages


# --- following deliveries --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """Where a tracked message ended up."""

    state: str
    seconds: float | None
    """From the gateway receiving the document to its delivery, on the gateway's clock."""
    error: str | None = None


class DeliveryTracker:
    """Follows accepted messages until each reaches a final state.

    One poll reads ``GET /v1/messages?limit=1000`` pages (newest first) until every pending
    message has been seen, so a thousand messages in flight cost one request per poll, not a
    thousand; whatever ``max_pages`` pages miss is then asked for one by one (at most
    ``per_poll``).
    """

    __slots__ = ("done", "max_pages", "page", "pending", "per_poll")

    def __init__(self, *, page: int = 1000, per_poll: int = 50, max_pages: int = 10) -> None:
        self.page = page
        self.per_poll = per_poll
        self.max_pages = max_pages
        self.pending: set[str] = set()
        self.done: dict[str, Delivery] = {}

    def track(self, message_id: str) -> None:
        """Follow ``message_id`` (lower-case UUID) until final."""
        if message_id not in self.done:
            self.pending.add(message_id)

    async def poll(self, client: GatewayClient) -> None:
        """Look once at every pending message."""
        if not self.pending:
            return
        unseen = set(self.pending)
        before: str | None = None
        for _ in range(self.max_pages):
            query = {"limit": str(self.page)}
            if before is not None:
                query["before"] = before
            rows = await client.messages(**query)
            for row in rows:
                unseen.discard(str(row.get("message_id", "")))
                self._note(row)
            if not unseen or len(rows) < self.page:
                return
            before = str(rows[-1]["received_at"])
        for message_id in sorted(unseen)[: self.per_poll]:
            found = await client.message(message_id)
            if found is not None:
                self._note(found)

    def _note(self, row: Mapping[str, Any]) -> None:
        message_id = str(row.get("message_id", ""))
        state = str(row.get("state", ""))
        if message_id not in self.pending:
            return
        if state in SUCCESS_STATES:
            seconds = _between(row.get("received_at"), row.get("state_at"))
            self.done[message_id] = Delivery(state=state, seconds=seconds)
        elif state in FAILED_STATES:
            self.done[message_id] = Delivery(
                state=state, seconds=None, error=row.get("last_error") or None
            )
        else:
            return
        self.pending.discard(message_id)

    async def wait(self, client: GatewayClient, *, timeout: float, interval: float = 0.5) -> None:
        """Poll until nothing is pending or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await self.poll(client)
            if self.pending:
                await asyncio.sleep(interval)


def _between(start: object, end: object) -> float | None:
    try:
        return (
            datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
        ).total_seconds()
    except ValueError:
        return None


# --- judging and reporting ------------------------------------------------------------------------


def judge(expectation: Expectation | None, answer: Answer, prepared: Prepared) -> bool | None:
    """Whether ``answer`` is what the manifest expects; None when there is no expectation.

    A valid sample must be accepted (with exactly the expected warnings, if any). An invalid one
    must be refused as a schema or business-rule violation with exactly the expected finding
    codes. A document that could not be signed (no key for its sender country in the PKI) may be
    refused as ``unsigned`` instead: the gateway checks signatures before content. A valid
    delivery receipt may be refused as ``receipt-not-allowed``: for a party connected to the
    gateway directly, only the gateway itself issues receipts.
    """
    if expectation is None:
        return None
    if expectation.valid:
        if answer.code == "receipt-not-allowed":
            return True
        return answer.accepted and set(answer.warnings) == set(expectation.codes)
    if prepared.unsignable and answer.code == "unsigned":
        return True
    return answer.code in REFUSAL_WITH_FINDINGS and set(answer.findings) == set(expectation.codes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Everything known about one replayed message, as the JSON report shows it."""

    index: int
    file: str
    message_id: str | None
    original_message_id: str | None
    status: int | None
    code: str
    resubmitted: bool
    findings: tuple[str, ...]
    warnings: tuple[str, ...]
    seconds_to_answer: float
    signed: bool
    expected: str | None
    as_expected: bool | None
    note: str | None = None
    detail: str = ""
    test: bool | None = None
    state: str | None = None
    seconds_to_delivery: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        body = asdict(self)
        body["findings"] = list(self.findings)
        body["warnings"] = list(self.warnings)
        return body


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of ``values``, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """The counts and latencies of a run."""

    sent: int
    accepted: int
    resubmitted: int
    refused: dict[str, int]
    unreachable: int
    delivered: int
    failed: int
    failed_states: dict[str, int]
    undelivered: int
    seconds: float
    throughput: float
    latency_answer_ms: dict[str, float | None]
    latency_delivery_ms: dict[str, float | None]
    checked: int
    as_expected: int
    differ: int
    test: int

    @classmethod
    def of(cls, outcomes: Sequence[Outcome], *, seconds: float, followed: bool = True) -> Summary:
        """Summarise ``outcomes`` of a run that took ``seconds`` to send.

        ``followed`` says whether deliveries were followed; if not, nothing counts as
        undelivered. Resubmissions (same message id again) are not counted as deliveries twice.
        """
        refused = Counter(o.code for o in outcomes if o.status is not None and o.status != 202)
        first = [o for o in outcomes if not o.resubmitted]
        failed = Counter(o.state for o in first if o.state in FAILED_STATES)
        accepted = [o for o in outcomes if o.status == 202]
        checked = [o for o in outcomes if o.as_expected is not None]
        return cls(
            sent=len(outcomes),
            accepted=len(accepted),
            resubmitted=sum(o.resubmitted for o in accepted),
            refused=dict(sorted(refused.items())),
            unreachable=sum(o.status is None for o in outcomes),
            delivered=sum(o.state in SUCCESS_STATES for o in first),
            failed=sum(failed.values()),
            failed_states={str(k): v for k, v in sorted(failed.items())},
            undelivered=sum(o.status == 202 and o.state is None for o in first) if followed else 0,
            seconds=round(seconds, 3),
            throughput=round(len(outcomes) / seconds, 2) if seconds > 0 else 0.0,
            latency_answer_ms=_percentiles([o.seconds_to_answer for o in accepted]),
            latency_delivery_ms=_percentiles(
                [o.seconds_to_delivery for o in first if o.seconds_to_delivery is not None]
            ),
            checked=len(checked),
            as_expected=sum(bool(o.as_expected) for o in checked),
            differ=sum(o.as_expected is False for o in checked),
            test=sum(bool(o.test) for o in accepted),
        )

    def lines(self) -> list[str]:
        """The human summary, one line each."""
        refused = ", ".join(f"{code} {n}" for code, n in self.refused.items()) or "-"
        failed = ", ".join(f"{state} {n}" for state, n in self.failed_states.items())
        lines = [
            f"sent        {self.sent:>6} in {self.seconds:.1f} s ({self.throughput:.1f} msg/s)",
            f"accepted    {self.accepted:>6}"
            + (f"  (of which resubmitted {self.resubmitted})" if self.resubmitted else ""),
            f"refused     {sum(self.refused.values()):>6}  {refused}",
            f"delivered   {self.delivered:>6}",
            f"failed      {self.failed + self.undelivered:>6}"
            + (f"  {failed}" if failed else "")
            + (f"  not final in time {self.undelivered}" if self.undelivered else ""),
        ]
        if self.test:
            lines.insert(2, f"  test        {self.test:>6}  (TestIndicator true)")
        if self.unreachable:
            lines.append(f"unreachable {self.unreachable:>6}")
        lines += [
            "latency to 202       " + _format_percentiles(self.latency_answer_ms),
            "latency to delivery  " + _format_percentiles(self.latency_delivery_ms),
        ]
        if self.checked:
            lines.append(
                f"expectations {self.checked} checked: {self.as_expected} as expected, "
                f"{self.differ} differ"
            )
        return lines


def _percentiles(seconds: Sequence[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {f"p{p}": ms(percentile(seconds, p)) for p in (50, 95, 99)}


def _format_percentiles(values: Mapping[str, float | None]) -> str:
    return "  ".join(
        f"{name} {'-' if value is None else f'{value:.0f} ms'}" for name, value in values.items()
    )


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write the JSON report (atomically enough for a test tool: write then rename)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, a line now and then
    otherwise (so that CI logs stay readable)."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None, width: int = 24) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False

    def update(self, done: int, counts: Mapping[str, int], *, force: bool = False) -> None:
        """Show ``done`` messages sent and the running ``counts``."""
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        elapsed = max(now - self._started, 1e-6)
        if self.total:
            filled = round(self.width * min(done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
        else:
            bar = f"[{done} sent, {elapsed:.0f} s]"
        text = " ".join(f"{k} {v}" for k, v in counts.items())
        line = f"{bar} {text} {done / elapsed:.1f} msg/s"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# --- one message's timeline, for send --wait ------------------------------------------------


def timeline_lines(message: Mapping[str, Any]) -> list[str]:
    """A message's timeline from ``GET /v1/messages/{id}``, one readable line per change."""
    lines = []
    start: datetime | None = None
    for change in message.get("timeline", []):
        at = datetime.fromisoformat(str(change["at"]))
        start = start or at
        offset = (at - start).total_seconds() * 1000
        extra = []
        if change.get("attempt"):
            extra.append(f"attempt {change['attempt']}")
        if change.get("error"):
            extra.append(str(change["error"]))
        if change.get("detail"):
            extra.append(str(change["detail"])[:120])
        suffix = f"  ({'; '.join(extra)})" if extra else ""
        stamp = at.isoformat(timespec="milliseconds")
        line = f"  {stamp}  +{offset:>6.0f} ms  {change['state']:<10}"
        lines.append((line + suffix).rstrip())
    return lines


# The message id and Form D number of samples/formd/valid/sg-th-basic.xml, which the tests and
# benchmarks copy into fresh documents.
SAMPLE_MESSAGE_ID = b"6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
SAMPLE_DOCUMENT_ID = b"SG26-CO-0012345"


def with_message_id(document: bytes, message_id: str | None = None) -> bytes:
    """A fresh copy of the basic Form D sample: new (or given) message id, own Form D number.

    Both change, so that two copies are two documents rather than one document submitted
    twice under different message ids (which the journal refuses as a duplicate).
    """
    message_id = message_id or str(uuid.uuid4())
    if SAMPLE_MESSAGE_ID not in document or SAMPLE_DOCUMENT_ID not in document:
        raise ValueError("not a copy of samples/formd/valid/sg-th-basic.xml")
    number = f"SG26-CO-{message_id[:8].upper()}".encode()
    return document.replace(SAMPLE_MESSAGE_ID, message_id.encode()).replace(
        SAMPLE_DOCUMENT_ID, number
    )
