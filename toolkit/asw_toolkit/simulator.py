"""A simulated national single window: a real HTTP server that receives documents.

``POST /documents`` takes one XML document (as the ``http-push`` adapter sends it), reads it
through the gateway's hardened parser and header reader, and answers as its *behaviour* says:

    accept             200 {"status": "accepted", ...}
    slow               200, after ``delay_seconds``
    timeout            no answer for ``hold_seconds`` (an hour by default)
    fail-then-recover  500 for the first ``fail_count`` requests, then 200
    garbage            200 with a body that is not JSON (the document *was* accepted)
    reject             400 {"status": "rejected", "code": ..., "reason": ...}
    down               503 for every request, without reading it

A document that cannot be parsed, has no readable header or is addressed to another country
is answered 400 whatever the behaviour (except ``down`` and the failing part of
``fail-then-recover``, which do not look at the request).

The simulator is not idempotent on purpose: every accepted arrival is recorded, so a message
received twice shows up twice in ``GET /received``. ``GET /stats`` counts requests per answer,
``POST /behaviour`` changes the behaviour at run time (JSON ``{behaviour, fail_count,
delay}``), and ``GET /documents/{message_id}`` returns a stored document.

With ``respond_to`` set, every accepted Form D, ACDD or Origin Declaration is answered a moment
later by a Customs Response POSTed to ``{respond_to}/v1/messages``, built from a Customs
Response template (by default the first of ``samples/response/valid/*.xml``); a rejection
notice by a clarification, a retroactive check request by a reply and a verification visit
request by a consent, a certified-exporter lookup or AEO status query (one the gateway forwarded:
it keeps no register of this country) by a response read from the register documents in
``registers`` (``asw_toolkit.conversation_answers``). Playing the importing side, a
simulator with ``determine_to`` (a gateway URL) that receives a retroactive check reply sends
the origin determination that ends the check (OCP Rule 18) there a moment later: GRANTED for
each item confirmed, DENIED with the reply's explanation for each item not confirmed.

Re-transmission (OCP Rule 29(3)): an e-Form D the gateway re-delivers itself arrives with
``X-ASW-Retransmission-Request`` naming the request; it is recorded in ``retransmissions`` once
per request (and in ``received``, where it shows as a second arrival). ``stats`` counts it under
``retransmissions``, not ``duplicates``: only a repeat of the same copy (same request) is one.
Playing the issuing side, a simulator with ``respond_to`` that receives a re-transmission
request sends the e-Form D again, if it is among the documents it issued (``issued``, by message
id) and the request comes from that e-Form D's receiver: the same message id and body, its
header's ReferencedMessageID naming the request (re-signed with ``response_key`` when set).
Other requests are only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from lxml import etree

from asw_toolkit.conversation_answers import (
    ANSWERS,
    DETERMINED,
    build_answer,
    build_determination,
    register_entries,
)
from gateway.core.envelope import NS_COMMON, NS_DSIG, DocumentType, Envelope, read_envelope
from gateway.core.parsing import parse
from gateway.core.signatures import SigningKey, sign, verify
from gateway.core.trust import TrustStore
from gateway.errors import GatewayError, SettingsError

log = structlog.get_logger("asw_toolkit.simulator")
_Builder = Callable[..., tuple[str, bytes] | None]

BEHAVIOURS = ("accept", "slow", "timeout", "fail-then-recover", "garbage", "reject", "down")
RESPONSE_SAMPLES = Path("samples") / "response" / "valid"
GARBAGE_BODY = b"<<OK>> \x00\xff not json {"
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# The importing side answers trade documents: a Form D, an ACDD or an Origin Declaration.
_ANSWERED_TYPES = frozenset(
    {DocumentType.FORM_D, DocumentType.ACDD, DocumentType.ORIGIN_DECLARATION}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How the simulated NSW answers documents."""

    name: str = "accept"
    fail_count: int = 3
    delay_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.name not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, got {self.name!r}")
        if self.fail_count < 0:
            raise ValueError(f"fail_count must be 0 or more, got {self.fail_count}")
        if self.delay_seconds < 0:
            raise ValueError(f"delay must be 0 or more seconds, got {self.delay_seconds}")

    def to_json(self) -> dict[str, Any]:
        """Render as the JSON object of ``POST /behaviour`` and ``GET /stats``."""
        return {"behaviour": self.name, "fail_count": self.fail_count, "delay": self.delay_seconds}


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """Everything one simulated NSW is started with."""

    country: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    store_dir: Path | None = None
    respond_to: str | None = None
    response_template: bytes | None = None
    respond_api_key: str | None = None
    respond_delay_seconds: float = 0.5
    hold_seconds: float = 3600.0
    trust: Callable[[], TrustStore] | None = None  # verify every document it receives
    response_key: SigningKey | None = None  # sign its Customs Responses with this key
    # e-Form Ds this NSW issued, by message id: what it sends again on a re-transmission request
    issued: Mapping[str, bytes] = field(default_factory=dict)
    # Its own register updates and AEO notifications: what it answers register queries from
    registers: tuple[bytes, ...] = ()
    # the gateway to send origin determinations to, after each retroactive check reply
    determine_to: str | None = None

    def __post_init__(self) -> None:
        if self.respond_to is not None and self.response_template is None:
            raise SettingsError(
                [
                    "respond_to needs a Customs Response template; none was given "
                    f"(no {RESPONSE_SAMPLES}/*.xml found, or pass one explicitly)"
                ]
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SentResponse:
    """One Customs Response the simulator sent back, and how the gateway answered."""

    message_id: str
    referenced_message_id: str
    status: int | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Render for ``GET /stats``."""
        return {
            "message_id": self.message_id,
            "referenced_message_id": self.referenced_message_id,
            "status": self.status,
            "error": self.error,
        }


def find_response_template(roots: tuple[Path, ...] = ()) -> Path | None:
    """A Customs Response sample to answer with, preferring one whose status is UTILISED.

    Looks in ``samples/response/valid/*.xml`` under each of ``roots`` (default: the current
    directory, then the repository this module belongs to).
    """
    search = roots or (Path.cwd(), Path(__file__).resolve().parents[2])  # toolkit/asw_toolkit/
    for root in search:
        found = sorted((root / RESPONSE_SAMPLES).glob("*.xml"))
        for path in found:
            if _status_of(path) == "UTILISED":
                return path
        if found:
            return found[0]
    return None


def _status_of(path: Path) -> str | None:
    ns = DocumentType.CUSTOMS_RESPONSE.root_tag[1:].split("}")[0]
    try:
        root = parse(path.read_bytes())
    except (OSError, GatewayError):
        return None
    node = root.find(f"{{{ns}}}Response/{{{ns}}}Status/{{{ns}}}NameCode")
    return node.text.strip() if node is not None and node.text else None


def build_customs_response(
    template: bytes, *, country: str, answered: Envelope, declaration_id: str | None, now: datetime
) -> tuple[str, bytes]:
    """A Customs Response from ``template`` answering ``answered``; returns (message id, XML).

    The header gets a new message id, this NSW as sender, the answered document's sender as
    receiver and the answered message id as ``ReferencedMessageID``; the response names the
    answered declaration. Any signature in the template is dropped (it would no longer verify).
    """
    root = parse(template)
    if root.tag != DocumentType.CUSTOMS_RESPONSE.root_tag:
        raise ValueError(f"the response template's root is {root.tag}, not a CustomsResponse")
    header = root.find(_common_tag("MessageHeader"))
    if header is None:
        raise ValueError("the response template has no MessageHeader")
    message_id = str(uuid.uuid4())
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    _set(header, "MessageID", message_id)
    _set_party(header, "SenderParty", country, answered.receiver.party_id)
    _set_party(header, "ReceiverParty", answered.sender.country, answered.sender.party_id)
    _set(header, "CreationDateTime", stamp)
    referenced = header.find(_common_tag("ReferencedMessageID"))
    if referenced is None:
        referenced = etree.Element(_common_tag("ReferencedMessageID"))
        created = header.find(_common_tag("CreationDateTime"))
        if created is None:
            raise ValueError("the response template's header has no CreationDateTime")
        created.addnext(referenced)
    referenced.text = answered.message_id
    ns = DocumentType.CUSTOMS_RESPONSE.root_tag[1:].split("}")[0]
    response = root.find(f"{{{ns}}}Response")
    if response is not None:
        issued = response.find(f"{{{ns}}}IssueDateTime")
        if issued is not None:
            issued.text = stamp
        if declaration_id is not None:
            decl_id = response.find(f"{{{ns}}}Declaration/{{{ns}}}ID")
            if decl_id is not None:
                decl_id.text = declaration_id
        type_code = response.find(f"{{{ns}}}Declaration/{{{ns}}}TypeCode")
        if type_code is not None:
            type_code.text = answered.document_type.value
    for signature in root.findall(f"{{{NS_DSIG}}}Signature"):
        root.remove(signature)
    return message_id, bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _common_tag(name: str) -> str:
    return f"{{{NS_COMMON}}}{name}"


def _set(parent: etree._Element, name: str, text: str) -> None:
    node = parent.find(_common_tag(name))
    if node is None:
        raise ValueError(f"the response template's header has no {name}")
    node.text = text


def _set_party(header: etree._Element, name: str, country: str, party_id: str | None) -> None:
    party = header.find(_common_tag(name))
    if party is None:
        raise ValueError(f"the response template's header has no {name}")
    _set(party, "CountryCode", country)
    existing = party.find(_common_tag("PartyID"))
    if party_id is None:
        if existing is not None:
            party.remove(existing)
        return
    if existing is None:
        existing = etree.SubElement(party, _common_tag("PartyID"))
    existing.text = party_id


def _declaration_id(root: etree._Element) -> str | None:
    ns = str(root.tag)[1:].split("}")[0] if str(root.tag).startswith("{") else ""
    node = root.find(f"{{{ns}}}Declaration/{{{ns}}}ID")
    return node.text.strip() if node is not None and node.text else None


class NswSimulator:
    """The state of one simulated NSW: its behaviour and everything it received."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.behaviour = config.behaviour
        self.received: list[str] = []
        self.documents: dict[str, bytes] = {}
        self.requests = 0
        self.answers: Counter[int] = Counter()
        self.responses: list[SentResponse] = []
        # (e-Form D message id, request message id) for every re-transmission received
        self.retransmissions: list[tuple[str, str]] = []
        self.issued: dict[str, bytes] = dict(config.issued)
        self.resent: list[SentResponse] = []
        self.answered: list[SentResponse] = []  # clarifications, replies, consents sent back
        self._failures_served = 0
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def set_behaviour(self, behaviour: Behaviour) -> None:
        """Switch behaviour; a new ``fail-then-recover`` fails its ``fail_count`` afresh."""
        self.behaviour = behaviour
        self._failures_served = 0
        log.info("nsw_behaviour_changed", country=self.config.country, **behaviour.to_json())

    def counts(self) -> dict[str, int]:
        """Accepted arrivals per message id."""
        return dict(Counter(self.received))

    def stats(self) -> dict[str, Any]:
        """Counters for tests and fault-injection runs."""
        counts = Counter(self.received)
        # A copy asked for again (one per request) is no duplicate; a repeat of it is.
        asked = Counter(message_id for message_id, _ in self.retransmissions)
        return {
            "country": self.config.country,
            **self.behaviour.to_json(),
            "requests": self.requests,
            "answers": {str(status): n for status, n in sorted(self.answers.items())},
            "accepted": len(self.received),
            "unique": len(counts),
            "retransmissions": len(self.retransmissions),
            "duplicates": len(self.received) - len(counts) - len(self.retransmissions),
            "duplicated_message_ids": sorted(
                m for m, n in counts.items() if n > 1 + asked.get(m, 0)
            ),
            "held": self.requests - sum(self.answers.values()),
            "responses": [r.to_json() for r in self.responses],
        }

    async def stop(self) -> None:
        """Release held requests, finish or cancel response sending, close the client."""
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the simulator is stopping instead."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def handle_document(self, request: web.Request) -> web.Response:
        """``POST /documents``: answer one document as the behaviour says."""
        self.requests += 1
        behaviour = self.behaviour
        answer = await self._answer(request, behaviour)
        self.answers[answer.status] += 1
        return answer

    async def _answer(self, request: web.Request, behaviour: Behaviour) -> web.Response:
        country = self.config.country
        if behaviour.name == "down":
            return _json(503, {"status": "unavailable", "reason": f"NSW {country} is down."})
        if behaviour.name == "fail-then-recover" and self._failures_served < behaviour.fail_count:
            self._failures_served += 1
            reason = (
                f"Simulated failure {self._failures_served} of {behaviour.fail_count} "
                f"at NSW {country}."
            )
            return _json(500, {"status": "error", "reason": reason})
        body = await request.read()
        if behaviour.name == "timeout":
            await self._pause(self.config.hold_seconds)
            return _json(503, {"status": "unavailable", "reason": "Gave up holding the request."})
        read = self._read(body, request.headers.get("X-ASW-Message-ID"), behaviour)
        if isinstance(read, web.Response):
            return read
        envelope, root = read
        if behaviour.name == "slow" and await self._pause(behaviour.delay_seconds):
            return _json(503, {"status": "unavailable", "reason": "Shutting down."})
        await self._store(envelope, body)
        asked = request_header(request.headers)
        if asked is not None:
            resent = (envelope.message_id, asked)
            if resent in self.retransmissions:  # the same copy again: a duplicate in stats
                log.info("nsw_retransmission_repeated", message_id=resent[0], request=asked)
            else:
                self.retransmissions.append(resent)
                log.info("nsw_retransmission_received", message_id=resent[0], request=asked)
        elif self.config.respond_to is not None and envelope.document_type in _ANSWERED_TYPES:
            self._spawn(self._respond(envelope, _declaration_id(root)))
        elif (
            self.config.respond_to is not None
            and envelope.document_type is DocumentType.RETRANSMISSION_REQUEST
        ):
            self._spawn(self._resend(envelope))
        elif self.config.respond_to is not None and envelope.document_type in ANSWERS:
            answer = partial(build_answer, registers=register_entries(self.config.registers))
            self._spawn(self._answer_step(envelope, root, answer, self.config.respond_to))
        elif self.config.determine_to is not None and envelope.document_type in DETERMINED:
            self._spawn(
                self._answer_step(envelope, root, build_determination, self.config.determine_to)
            )
        return self._accepted(envelope, behaviour)

    def _accepted(self, envelope: Envelope, behaviour: Behaviour) -> web.Response:
        """The 200 answer: a JSON receipt, or garbage when told to."""
        if behaviour.name == "garbage":
            return web.Response(status=200, body=GARBAGE_BODY, content_type="text/plain")
        country = self.config.country
        accepted = {"status": "accepted", "message_id": envelope.message_id, "receiver": country}
        return _json(200, accepted)

    def _read(
        self, body: bytes, claimed: str | None, behaviour: Behaviour
    ) -> tuple[Envelope, etree._Element] | web.Response:
        """The document's header and tree, or the 400 answer refusing it."""
        country = self.config.country
        try:
            root = parse(body)
            envelope = read_envelope(root)
        except GatewayError as exc:
            return _refuse(exc.code, exc.detail)
        if self.config.trust is not None:
            try:
                verify(root, self.config.trust(), now=datetime.now(UTC))
            except GatewayError as exc:
                return _refuse(exc.code, exc.detail)
        if claimed is not None and claimed.strip().lower() != envelope.message_id:
            return _refuse(
                "message-id-mismatch",
                f"X-ASW-Message-ID {claimed!r} differs from the header's {envelope.message_id}.",
            )
        if envelope.receiver.country != country:
            addressed = envelope.receiver.country
            return _refuse(
                "wrong-receiver", f"This is NSW {country}; the document is for {addressed}."
            )
        if behaviour.name == "reject":
            return _refuse(
                "simulated-rejection",
                f"NSW {country} rejects the document (simulated behaviour 'reject').",
            )
        return envelope, root

    async def _store(self, envelope: Envelope, body: bytes) -> None:
        message_id = envelope.message_id
        duplicate = message_id in self.documents
        if self.config.store_dir is not None:
            await asyncio.to_thread(_write_once, self.config.store_dir, message_id, body)
        self.documents.setdefault(message_id, body)
        self.received.append(message_id)
        log.info(
            "nsw_document_accepted",
            country=self.config.country,
            message_id=message_id,
            sender=envelope.sender.country,
            doc_type=envelope.document_type.value,
            duplicate=duplicate,
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, answered: Envelope, declaration_id: str | None) -> None:
        """Send a Customs Response for ``answered`` back through the gateway."""
        config = self.config
        assert config.respond_to is not None  # noqa: S101  (only spawned when set)
        assert config.response_template is not None  # noqa: S101  (checked by the config)
        if await self._pause(config.respond_delay_seconds):
            return
        message_id, document = build_customs_response(
            config.response_template,
            country=config.country,
            answered=answered,
            declaration_id=declaration_id,
            now=datetime.now(UTC),
        )
        if config.response_key is not None:
            signed = sign(parse(document), config.response_key)
            document = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        sent = await self._post_back(document, message_id, answered.message_id)
        self.responses.append(sent)
        log.info("nsw_response_sent", country=config.country, **sent.to_json())

    async def _answer_step(
        self, request: Envelope, root: etree._Element, build: _Builder, to: str
    ) -> None:
        """Play the other side of a conversation step (``asw_toolkit.conversation_answers``):
        send what ``build`` makes of ``request`` to the gateway at ``to``."""
        config = self.config
        if await self._pause(config.respond_delay_seconds):
            return
        built = build(root, request, now=datetime.now(UTC))
        if built is None:
            return
        message_id, document = built
        if config.response_key is not None:
            signed = sign(parse(document), config.response_key)
            document = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        sent = await self._post_back(document, message_id, request.message_id, to=to)
        self.answered.append(sent)
        log.info("nsw_step_answered", country=config.country, **sent.to_json())

    async def _post_back(
        self, document: bytes, message_id: str, refers_to: str, *, to: str | None = None
    ) -> SentResponse:
        """POST ``document`` to the gateway (at ``to``, else ``respond_to``); how it answered."""
        config = self.config
        base = to or config.respond_to
        assert base is not None  # noqa: S101  (only called when set)
        headers = {"Content-Type": "application/xml", "Accept": "application/json"}
        if config.respond_api_key:
            headers["X-API-Key"] = config.respond_api_key
        url = base.rstrip("/") + "/v1/messages"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            async with self._session.post(url, data=document, headers=headers) as answer:
                await answer.read()
                return SentResponse(
                    message_id=message_id, referenced_message_id=refers_to, status=answer.status
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SentResponse(
                message_id=message_id,
                referenced_message_id=refers_to,
                status=None,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _resend(self, request: Envelope) -> None:
        """Play the issuing side of a re-transmission request: send the e-Form D again."""
        config = self.config
        assert config.respond_to is not None  # noqa: S101  (only spawned when set)
        wanted = request.referenced_message_id
        original = self.issued.get(wanted) if wanted is not None else None
        if original is None:
            log.info("nsw_retransmission_unknown", request=request.message_id, wanted=wanted)
            return
        root = parse(original)
        if read_envelope(root).receiver.country != request.sender.country:
            log.info("nsw_retransmission_refused", request=request.message_id, wanted=wanted)
            return
        if await self._pause(config.respond_delay_seconds):
            return
        document = resend_document(root, request.message_id, config.response_key)
        assert wanted is not None  # noqa: S101  (found in issued)
        sent = await self._post_back(document, wanted, request.message_id)
        self.resent.append(sent)
        log.info("nsw_form_d_resent", country=config.country, **sent.to_json())

    async def handle_received(self, _: web.Request) -> web.Response:
        """``GET /received``: accepted message ids in arrival order, with duplicates, and the
        re-transmissions among them."""
        return web.json_response(
            {
                "message_ids": self.received,
                "counts": self.counts(),
                "retransmissions": [
                    {"message_id": m, "request": r} for m, r in self.retransmissions
                ],
            }
        )

    async def handle_stats(self, _: web.Request) -> web.Response:
        """``GET /stats``: request and answer counters."""
        return web.json_response(self.stats())

    async def handle_document_get(self, request: web.Request) -> web.Response:
        """``GET /documents/{message_id}``: a stored document."""
        document = self.documents.get(request.match_info["message_id"].lower())
        if document is None:
            return _json(404, {"status": "not-found"})
        return web.Response(body=document, content_type="application/xml")

    async def handle_behaviour(self, request: web.Request) -> web.Response:
        """``POST /behaviour``: switch behaviour (JSON ``{behaviour, fail_count, delay}``)."""
        try:
            behaviour = _behaviour_from_json(await request.json(), self.behaviour)
        except (ValueError, TypeError) as exc:
            return _json(400, {"status": "invalid", "reason": str(exc)})
        self.set_behaviour(behaviour)
        return web.json_response(behaviour.to_json())


def _behaviour_from_json(raw: object, current: Behaviour) -> Behaviour:
    if not isinstance(raw, dict):
        raise TypeError("expected a JSON object")
    unknown = set(raw) - {"behaviour", "fail_count", "delay"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    name = raw.get("behaviour", current.name)
    fail_count = raw.get("fail_count", current.fail_count)
    delay = raw.get("delay", current.delay_seconds)
    if not isinstance(name, str):
        raise TypeError("behaviour must be a string")
    if isinstance(fail_count, bool) or not isinstance(fail_count, int):
        raise TypeError("fail_count must be a whole number")
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise TypeError("delay must be a number of seconds")
    return replace(current, name=name, fail_count=fail_count, delay_seconds=float(delay))


def request_header(headers: Mapping[str, str]) -> str | None:
    """The re-transmission request a pushed document answers, from its HTTP headers."""
    value = headers.get("X-ASW-Retransmission-Request")
    return value.strip().lower() if value else None


def resend_document(root: etree._Element, request_id: str, key: SigningKey | None = None) -> bytes:
    """The issued e-Form D ``root`` sent again in answer to ``request_id`` (Rule 29(3)).

    Same message id and body; the header's ReferencedMessageID names the request (placed
    after CreationDateTime, where the XSD wants it); an old signature is dropped and, with
    ``key``, the document is signed again.
    """
    header = root.find(_common_tag("MessageHeader"))
    if header is None:
        raise ValueError("the document has no MessageHeader")
    for old in root.findall(f"{{{NS_DSIG}}}Signature"):
        root.remove(old)
    reference = header.find(_common_tag("ReferencedMessageID"))
    if reference is None:
        reference = etree.Element(_common_tag("ReferencedMessageID"))
        created = header.find(_common_tag("CreationDateTime"))
        assert created is not None  # noqa: S101  (read_envelope requires it)
        created.addnext(reference)
        reference.tail = created.tail
    reference.text = request_id
    if key is not None:
        root = sign(root, key)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _write_once(directory: Path, message_id: str, body: bytes) -> None:
    """Store ``<message-id>.xml`` atomically; a repeat keeps the first copy."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{message_id}.xml"
    if target.exists():
        return
    temporary = directory / f".{message_id}.tmp"
    with temporary.open("wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(target)


def _json(status: int, body: Mapping[str, Any]) -> web.Response:
    return web.json_response(dict(body), status=status)


def _refuse(code: str, reason: str) -> web.Response:
    return _json(400, {"status": "rejected", "code": code, "reason": reason})


SIMULATOR = web.AppKey("simulator", NswSimulator)


def create_app(config: SimulatorConfig) -> web.Application:
    """The aiohttp application of one simulated NSW."""
    simulator = NswSimulator(config)
    app = web.Application(client_max_size=MAX_DOCUMENT_BYTES)
    app[SIMULATOR] = simulator
    app.router.add_post("/documents", simulator.handle_document)
    app.router.add_get("/documents/{message_id}", simulator.handle_document_get)
    app.router.add_get("/received", simulator.handle_received)
    app.router.add_get("/stats", simulator.handle_stats)
    app.router.add_post("/behaviour", simulator.handle_behaviour)

    async def stop(_: web.Application) -> None:
        await simulator.stop()

    app.on_shutdown.append(stop)
    return app


class RunningSimulator:
    """A simulated NSW listening on ``host:port`` (port 0: any free port) while in use.

    ``async with RunningSimulator(config) as nsw:`` then ``nsw.url`` is its base URL,
    ``nsw.documents_url`` the endpoint to configure in ``http-push`` and ``nsw.simulator``
    its state.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.app = create_app(config)
        self.simulator = self.app[SIMULATOR]
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._runner = web.AppRunner(self.app, shutdown_timeout=shutdown_timeout, access_log=None)
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9001``."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def documents_url(self) -> str:
        """Where documents are POSTed."""
        return f"{self.url}/documents"

    async def start(self) -> None:
        """Bind and start serving."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        """Stop serving; requests still held are answered 503."""
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
