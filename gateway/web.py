"""The aiohttp shell: handlers, correlation ids, and problem+json for every refusal.

Handlers stay thin: read the body, hand it to the pure ingest, publish, answer. Errors are
rendered in one middleware from the attributes of the error class, never ad hoc.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography import x509

from gateway import metrics, problems
from gateway.app_keys import (
    ADAPTERS,
    AUDIT,
    BROKER,
    CLOCK,
    JOURNAL,
    OPERATIONS,
    OWN_KEYS,
    READINESS,
    SETTINGS,
    SUBMISSIONS,
    TRUST,
    TRUST_RELOADS,
)
from gateway.auth import PRINCIPAL, caller_of, path_kind
from gateway.broker import Broker
from gateway.core.breaker import BreakerPhase
from gateway.core.deadlines import Deadline, deadlines
from gateway.core.handover import RETRANSMISSION_REQUEST_HEADER
from gateway.core.partner_health import PartnerFacts, judge
from gateway.core.states import WAITING_STATES, MessageState
from gateway.core.topology import Topology
from gateway.errors import (
    Busy,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    ParameterInvalid,
    PayloadTooLarge,
    RejectedMessage,
    RequestTimeout,
    UnsupportedMediaType,
)
from gateway.journal import Journal, MessageSummary, MessageView, Outcomes, outcomes_of
from gateway.journal.export import summary_json, timeline_json
from gateway.metrics import oldest_waiting
from gateway.offload import RequestPool, offload, using
from gateway.operators import OperatorKeys
from gateway.query import MESSAGE_ID, bool_param, int_param
from gateway.readiness import worker_readiness
from gateway.register_api import add_register_routes
from gateway.settings import Settings

log = structlog.get_logger("gateway.web")


XML_TYPES = frozenset({"application/xml", "text/xml"})
# A correlation id is echoed in headers and logs: printable ASCII without spaces, at most 255.
CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,255}")
MAX_WITHIN_DAYS = 36_500
# A stored document is data to save, never a page to render on the gateway's origin.
DOCUMENT_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def utc_now() -> datetime:
    """The wall clock, in UTC; the one clock the shells hand to the core."""
    return datetime.now(UTC)


def problem_response(
    error: GatewayError, settings: Settings, *, instance: str | None = None
) -> web.Response:
    """Render ``error`` as RFC 9457 problem details (``gateway.problems``)."""
    return problems.problem_response(
        error, base_uri=settings.http.problem_base_uri, instance=instance
    )


def _correlation_id(request: web.Request) -> tuple[str, GatewayError | None]:
    """The caller's ``X-Correlation-ID`` when it is usable, else a fresh one and the reason."""
    given = request.headers.get("X-Correlation-ID")
    if given is None or given == "":
        return str(uuid.uuid4()), None
    if CORRELATION_ID.fullmatch(given):
        return given, None
    return str(uuid.uuid4()), ParameterInvalid(
        "The X-Correlation-ID header must be 1 to 255 printable ASCII characters without "
        "spaces (a UUID is a good choice)."
    )


def message_id_of(request: web.Request) -> str:
    """The ``{message_id}`` of the path; an id that is no UUID is simply not found."""
    message_id = request.match_info["message_id"].lower()
    if not MESSAGE_ID.fullmatch(message_id):
        raise NotFound("No message with that id is known to this gateway (ids are UUIDs).")
    return message_id


async def _handle(
    request: web.Request, handler: Handler, refusal: GatewayError | None
) -> web.StreamResponse:
    if refusal is not None:
        raise refusal
    return await handler(request)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a correlation id, and turn every failure into problem+json."""
    correlation_id, bad_header = _correlation_id(request)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
    settings = request.app[SETTINGS]
    response: web.StreamResponse
    try:
        response = await _handle(request, handler, bad_header)
    except GatewayError as exc:
        response = problem_response(exc, settings, instance=request.path)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of a late body is not waited for
    except web.HTTPNotFound:
        response = problem_response(NotFound(f"There is nothing at {request.path}."), settings)
    except web.HTTPMethodNotAllowed as exc:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.path}.")
        response = problem_response(error, settings)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    except web.HTTPException:
        raise
    except ConnectionResetError:
        # The caller went away mid-request: nothing to answer, nothing of ours went wrong.
        log.info("client_disconnected", path=request.path, method=request.method)
        response = web.Response(status=400)
    except Exception:
        log.exception("request_failed", path=request.path)
        response = problem_response(
            GatewayError("An internal error occurred; it has been logged."), settings
        )
    response.headers["X-Correlation-ID"] = correlation_id
    return response


async def _read_xml_body(request: web.Request) -> bytes:
    settings = request.app[SETTINGS]
    limit = settings.http.max_body_bytes
    if request.content_type not in XML_TYPES and not request.content_type.endswith("+xml"):
        raise UnsupportedMediaType(
            f"The body must be sent as application/xml, not {request.content_type!r}."
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"The document is {request.content_length:,} bytes; this gateway accepts at most "
            f"{limit:,} bytes."
        )
    # read(n) returns what has arrived so far; read chunks until the end of the body.
    chunks: list[bytes] = []
    size = 0
    seconds = settings.http.body_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.read(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"The document is larger than the limit of {limit:,} bytes."
                    )
                chunks.append(chunk)
    except TimeoutError as exc:
        raise RequestTimeout(
            f"The document did not arrive within {seconds:g} seconds; send it again."
        ) from exc
    return b"".join(chunks)


def _retransmission_request(request: web.Request) -> str | None:
    """The request id of a copy forwarded again as a re-transmission (OCP Rule 29(3)) by the
    issuing country's gateway: ``X-ASW-Retransmission-Request``, a message id (UUID)."""
    value = request.headers.get(RETRANSMISSION_REQUEST_HEADER)
    if value is None:
        return None
    if not MESSAGE_ID.fullmatch(value.strip().lower()):
        raise ParameterInvalid(
            f"{RETRANSMISSION_REQUEST_HEADER} must be the re-transmission request's message id "
            "(a UUID)."
        )
    return value.strip().lower()


async def submit_message(request: web.Request) -> web.Response:
    """POST /v1/messages: check a document, publish it durably, answer 202 with its id.

    A refusal is journalled (``Submissions.record_refusal``), also when the body itself is
    refused (wrong media type, too large, too slow): then with its size alone.
    """
    started = time.perf_counter()
    try:
        data = await _read_xml_body(request)
    except RejectedMessage as exc:
        metrics.refused(exc, "http", started, sender=caller_of(request))
        await request.app[SUBMISSIONS].record_refusal(
            exc, None, channel="http", caller=caller_of(request), size=request.content_length
        )
        raise
    submitted = await request.app[SUBMISSIONS].submit(
        data,
        channel="http",
        caller=caller_of(request),
        correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
        retransmission_request=_retransmission_request(request),
    )
    accepted = submitted.accepted
    envelope = accepted.envelope
    return web.json_response(
        {
            "message_id": envelope.message_id,
            "status": submitted.state.value,
            "resubmitted": submitted.resubmitted,
            "document_type": envelope.document_type.value,
            "sender": envelope.sender.country,
            "receiver": envelope.receiver.country,
            "test": envelope.test,
            "warnings": [f.to_json() for f in accepted.report.findings],
        },
        status=202,
        headers={"Location": f"/v1/messages/{envelope.message_id}"},
    )


async def validate_document(request: web.Request) -> web.Response:
    """POST /v1/validate: the findings for a document, never routed or stored."""
    submissions = request.app[SUBMISSIONS]
    now = request.app[CLOCK]()
    data = await _read_xml_body(request)
    threshold = request.app[SETTINGS].http.offload_bytes
    checked = await offload(len(data), threshold, lambda: submissions.ingest.check(data, now=now))
    envelope = checked.envelope
    # The register checks of submission, from the same code, on the tree parsed above.
    report = await submissions.registers.add_findings(
        checked.report, checked.root, envelope.message_id, now=now
    )
    body: dict[str, Any] = {
        "message_id": envelope.message_id,
        "document_type": report.document_type.value,
        "valid": report.valid,
        "findings": [f.to_json() for f in report.findings],
    }
    return web.json_response(body)


def _hidden_from(request: web.Request, summary: MessageSummary) -> bool:
    """An authenticated party sees only messages it sent or receives (operators see all)."""
    caller = caller_of(request)
    return caller is not None and caller not in (summary.record.sender, summary.record.receiver)


async def get_message(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}: the message's state, its timeline and related messages."""
    message_id = message_id_of(request)
    view = await request.app[JOURNAL].get(message_id)
    if view is None or _hidden_from(request, view.summary):
        raise NotFound(f"No message {message_id} is known to this gateway.")
    body = summary_json(view.summary)
    body["timeline"] = timeline_json(view)
    body["related"] = [
        {
            "message_id": link.related_message_id,
            "relation": link.relation,
            "at": link.at.isoformat(),
        }
        for link in view.links
    ]
    body["deadlines"] = deadlines_json(view, request.app[CLOCK]())
    return web.json_response(body)


def deadlines_json(view: MessageView, now: datetime) -> list[dict[str, object]]:
    """The OCP time limits running on the message (``gateway.core.deadlines``), as JSON."""
    record = view.summary.record
    delivered = [c.at for c in view.timeline if c.state is MessageState.DELIVERED]
    return deadline_list_json(
        deadlines(
            record.document_type,
            delivered[0] if delivered else None,
            [
                (link.relation, link.at)
                for link in view.links
                if link.message_id == record.message_id
            ],
            now,
        )
    )


def deadline_list_json(found: Iterable[Deadline]) -> list[dict[str, object]]:
    """Derived limits (``gateway.core.deadlines.Deadline``) as JSON."""
    return [
        {
            "name": d.name,
            "rule": d.rule,
            "kind": d.kind,
            "relation": d.relation,
            "starts_at": d.starts_at.isoformat(),
            "due_at": d.due_at.isoformat(),
            "done_at": d.done_at.isoformat() if d.done_at else None,
            "status": d.status,
        }
        for d in found
    ]


def audit_reason(request: web.Request) -> str | None:
    """Why the caller looks: the ``X-Audit-Reason`` header or the ``reason`` query parameter."""
    reason = request.headers.get("X-Audit-Reason") or request.query.get("reason")
    return reason.strip()[:500] or None if reason else None


async def visible_payload(request: web.Request, message_id: str, *, form: str = "xml") -> bytes:
    """The stored document of ``message_id`` when the caller may see it; ``NotFound`` otherwise.

    Every document served is a view the audit log records (who, when, which, why, ``form``).
    """
    journal = request.app[JOURNAL]
    view = await journal.get(message_id)
    payload = (
        await journal.payload(message_id)
        if view and not _hidden_from(request, view.summary)
        else None
    )
    if payload is None:
        raise NotFound(f"No document is stored for message {message_id}.")
    await request.app[AUDIT].record_document_view(
        request.get(PRINCIPAL), message_id, reason=audit_reason(request), form=form
    )
    return payload


async def get_document(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}/document: the stored document exactly as accepted.

    Served as a download that a browser never renders on the gateway's origin: a document may
    carry markup (XHTML with script) that was never signed, for instance inside KeyInfo.
    """
    message_id = message_id_of(request)
    payload = await visible_payload(request, message_id)
    return web.Response(
        body=payload,
        content_type="application/xml",
        headers={
            **DOCUMENT_HEADERS,
            "Content-Disposition": f'attachment; filename="{message_id}.xml"',
        },
    )


async def stats(request: web.Request) -> web.Response:
    """GET /v1/stats: messages by state and by receiver and state (test messages apart)."""
    include_test = bool_param(request.query, "test") is True
    counts = await request.app[JOURNAL].counts(include_test=include_test)
    by_receiver: dict[str, dict[str, int]] = {}
    for row in counts.rows:
        states = by_receiver.setdefault(row.receiver, {})
        states[row.state.value] = states.get(row.state.value, 0) + row.count
    refused: dict[str, Any] = {"total": 0, "by_state": {}, "by_code": {}, "by_sender": {}}
    for refusal in await request.app[JOURNAL].refusal_counts(include_test=include_test):
        refused["total"] += refusal.count
        for key, value in (
            ("by_state", refusal.state.value),
            ("by_code", refusal.error_code),
            ("by_sender", refusal.sender or "unknown"),
        ):
            refused[key][value] = refused[key].get(value, 0) + refusal.count
    return web.json_response(
        {
            "by_state": {state.value: n for state, n in counts.by_state().items()},
            "by_receiver": by_receiver,
            "refused": refused,
            "test_excluded": not include_test,
        }
    )


async def replay_dead_letter(request: web.Request) -> web.Response:
    """POST /v1/dead-letters/{id}/replay {reason, operator}: send a dead letter again."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise RejectedMessage('The body must be JSON: {"reason": ..., "operator": ...}.') from exc
    if not isinstance(body, dict):
        raise RejectedMessage("The body must be a JSON object with reason and operator.")
    principal = request.get(PRINCIPAL)
    # A named operator key says who acts; the body's "operator" only counts without one
    # (http.auth = "none", for development).
    named = principal.name if principal is not None else None
    operator = named if named is not None else str(body.get("operator") or "")
    reason = str(body.get("reason") or "")
    message_id = message_id_of(request)
    credential = None
    if principal is not None and principal.key_id is not None:
        credential = f"{principal.method}:{principal.key_id}"
    replayed = await request.app[OPERATIONS].replay(
        message_id,
        reason=reason,
        operator=operator,
        credential=credential,
        role=principal.role if principal is not None else None,
    )
    return web.json_response(
        {
            "message_id": replayed.message_id,
            "state": replayed.state.value,
            "replays": replayed.replays,
            "parked_copy_removed": replayed.parked_copy_removed,
            "operator": operator,
        },
        status=202,
    )


async def audit_log(request: web.Request) -> web.Response:
    """GET /v1/audit?actor=&action=&target=&before=&limit=: the audit log, newest first."""
    query = request.query
    limit = int_param(query, "limit", 100, 1, 1000, clamp=True)
    before = int_param(query, "before", 0, 1, 2**62) if "before" in query else None
    filters = {name: query.get(name, "").strip() or None for name in ("actor", "action", "target")}
    entries = await request.app[AUDIT].journal.audit_list(
        actor=filters["actor"],
        action=filters["action"],
        target=filters["target"],
        before_seq=before,
        limit=limit,
    )
    body: dict[str, Any] = {
        "entries": [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "role": e.role,
                "key_id": e.key_id,
                "action": e.action,
                "target": e.target,
                "reason": e.reason,
                "detail": e.detail,
            }
            for e in entries
        ]
    }
    if len(entries) == limit and entries:
        given = {name: value for name, value in filters.items() if value}
        body["next"] = "/v1/audit?" + urlencode(
            {**given, "before": entries[-1].seq, "limit": limit}
        )
    return web.json_response(body)


async def operator_keys(request: web.Request) -> web.Response:
    """GET /v1/operators: the named operator keys (never their digests), for admins."""
    keys = OperatorKeys(request.app[SETTINGS].http.operator_keys_file)
    return web.json_response(
        {"configured": keys.configured, "operators": [e.public() for e in keys.entries()]}
    )


async def certificates(request: web.Request) -> web.Response:
    """GET /v1/certificates?within_days=30: CA certificates and CRLs running out soon."""
    days = int_param(request.query, "within_days", 30, 0, MAX_WITHIN_DAYS)
    now = request.app[CLOCK]()
    trust = request.app[TRUST]
    store = trust() if trust is not None else None
    expiring = store.expiring(now=now, within=timedelta(days=days)) if store else ()
    return web.json_response(
        {
            "now": now.isoformat(),
            "within_days": days,
            "countries": sorted(store.countries) if store else [],
            "expiring": [
                {
                    "country": e.country,
                    "kind": e.kind,
                    "name": e.name,
                    "expires": e.expires.isoformat(),
                    "days_left": (e.expires - now).days,
                }
                for e in expiring
            ],
            "own": own_certificates(request, now),
        }
    )


def own_certificates(request: web.Request, now: datetime) -> list[dict[str, Any]]:
    """The gateway's own certificates, whatever their expiry: the keys it signs documents and
    receipts with (per country) and its HTTPS certificate."""
    found: list[tuple[str, str, x509.Certificate]] = [
        (country, kind, key.certificate)
        for kind, keys in request.app.get(OWN_KEYS, {}).items()
        for country, key in sorted(keys.items())
    ]
    tls = request.app[SETTINGS].http.tls_cert
    if tls:
        try:
            found.append(("", "tls", x509.load_pem_x509_certificate(Path(tls).read_bytes())))
        except (OSError, ValueError) as exc:
            log.warning("tls_certificate_unreadable", error=str(exc))
    return [
        {
            "country": country,
            "kind": kind,
            "name": certificate.subject.rfc4514_string(),
            "expires": certificate.not_valid_after_utc.isoformat(),
            "days_left": (certificate.not_valid_after_utc - now).days,
        }
        for country, kind, certificate in found
    ]


async def partners(request: web.Request) -> web.Response:
    """GET /v1/partners?window_minutes=60: each receiving partner's health, from outcomes.

    Per partner: the judgement (``gateway.core.partner_health``), the success rate and counts
    of delivery attempts in the window, the last success, the last error and since when
    deliveries have failed, the breaker, the delivery queue's depth and the oldest waiting
    document's age.
    """
    window = int_param(request.query, "window_minutes", 60, 1, 10_080)
    settings = request.app[SETTINGS]
    adapters = request.app[ADAPTERS]
    journal = request.app[JOURNAL]
    broker = request.app[BROKER]
    now = request.app[CLOCK]()
    outcomes = await outcomes_of(journal).delivery_outcomes(since=now - timedelta(minutes=window))
    try:
        depths: dict[str, int] | None = await asyncio.wait_for(broker.queue_depths(), 5.0)
    except (GatewayError, TimeoutError):
        depths = None
    waiting = {
        row.receiver
        for row in (await journal.counts()).rows
        if row.state in WAITING_STATES and row.count
    }
    topology = Topology(settings.amqp.prefix)
    rows = []
    for country, adapter in sorted(adapters.items()):
        seen = outcomes.get(country, Outcomes(receiver=country))
        breaker = getattr(getattr(adapter, "breaker_state", None), "phase", None)
        oldest = await oldest_waiting(journal, country) if country in waiting else None
        depth = None if depths is None else depths.get(topology.delivery_queue(country))
        facts = PartnerFacts(
            delivered=seen.delivered,
            failed=seen.failed,
            breaker=breaker.value if isinstance(breaker, BreakerPhase) else None,
            broker_up=depths is not None,
            queue_depth=depth,
            oldest_waiting=oldest,
            adapter_reachable=await adapter.healthy(),
        )
        health = judge(facts, now=now)
        failure = seen.last_failure
        rows.append(
            {
                "country": country,
                "adapter": settings.parties[country].adapter,
                "healthy": health.healthy,
                "status": health.status,
                "detail": health.reason,
                "window_minutes": window,
                "success_rate": health.success_rate,
                "delivered": seen.delivered,
                "failed": seen.failed,
                "last_success": _iso(seen.last_success),
                "last_error": None
                if failure is None
                else {
                    "at": failure.at.isoformat(),
                    "code": failure.error_code,
                    "detail": failure.detail,
                },
                "failing_since": _iso(seen.failing_since),
                "breaker": facts.breaker,
                "queue_depth": depth,
                "oldest_waiting_seconds": None
                if oldest is None
                else max(0.0, (now - oldest).total_seconds()),
            }
        )
    return web.json_response({"as_of": now.isoformat(), "partners": rows})


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def health_body(broker: Broker, node: str) -> dict[str, object]:
    """What ``/healthz`` answers: alive, and whether the broker is connected."""
    return {
        "status": "ok" if broker.connected else "degraded",
        "broker": "connected" if broker.connected else "disconnected",
        "node": node,
    }


async def readiness(
    broker: Broker,
    journal: Journal,
    trust_problems: tuple[str, ...] = (),
    *,
    draining: bool = False,
) -> tuple[int, dict[str, Any]]:
    """What this worker finds about itself for ``/readyz`` (status, body): ready when the
    broker is connected, the journal writable and it is not draining; the body names what is
    missing (``reasons``).

    A failed trust reload (a CRL or CA file that cannot be read) is named (``trust``:
    ``reload-failed`` with ``trust_reason``) but does not make the gateway unready: the
    previous trust is kept, and every gateway reading the same files would go unready at once.

    One decision for the HTTP route, an overflow connection (``ConnectionGuard``) and the
    report a worker gives its supervisor (``gateway.readiness``).
    """
    status = await journal.status()
    return worker_readiness(
        broker=broker.state,  # connected | blocked (a broker alarm) | disconnected
        journal=status.state,
        journal_reason=status.reason,
        trust_problems=trust_problems,
        draining=draining,
    )


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is alive; says whether the broker is connected."""
    return web.json_response(health_body(request.app[BROKER], request.app[SETTINGS].node.name))


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: 200 only when submissions can be accepted (broker connected, journal writable).

    The body names what is missing: ``broker`` (``connected``, ``blocked`` by a broker memory or
    disk alarm, or ``disconnected``), ``journal`` (``ok``, ``read-only``, ``replaced`` or
    ``unavailable``, with the journal's reason), ``trust``, ``draining``, and every cause in
    ``reasons``. Under a supervisor every worker answers the supervisor's one
    verdict over all workers (``gateway.readiness``), the same whichever worker takes it.
    """
    answer = request.app.get(READINESS)
    if answer is not None:  # the gateway's own: the supervisor's verdict, or this worker's
        status, body = await answer()
    else:
        reloads = request.app.get(TRUST_RELOADS)
        status, body = await readiness(
            request.app[BROKER], request.app[JOURNAL], reloads.problems if reloads else ()
        )
    return web.json_response(body, status=status)


async def queues(request: web.Request) -> web.Response:
    """GET /v1/queues: messages waiting per receiving country, and dead letters."""
    depths = await request.app[BROKER].queue_depths()
    return web.json_response({"queues": depths})


def _caller_key(request: web.Request) -> str | None:
    """Whom a request counts against: its party or the operator's key; None when unknown.

    With ``http.auth = "none"`` (loopback development, benchmarks) nobody is known and no
    per-caller limit applies; the request pool's bound still does.
    """
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.party is not None:
        return f"party:{principal.party}"
    if principal is not None and principal.key_id is not None:
        return f"key:{principal.key_id}"
    return None


def limits_middleware(settings: Settings, pool: RequestPool) -> Middleware:
    """At most ``http.per_caller_concurrency`` requests per caller; heavy work in ``pool``.

    Put it after the auth middleware (it counts per authenticated party or operator key). Open
    paths (health, console) and unauthenticated requests are not counted. A caller over its
    limit gets ``503 busy`` with Retry-After.
    """
    allowed = settings.http.per_caller_concurrency
    in_work: dict[str, int] = {}

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = None if path_kind(request.path) == "open" else _caller_key(request)
        if who is not None:
            running = in_work.get(who, 0)
            if running >= allowed:
                log.warning("caller_busy", path=request.path, in_work=running, limit=allowed)
                raise Busy(
                    f"You already have {running} requests in work at this gateway, the most it "
                    "takes from one caller at once; send this one again when one has finished."
                )
            in_work[who] = running + 1
        try:
            with using(pool):
                return await handler(request)
        finally:
            if who is not None:
                left = in_work[who] - 1
                if left:
                    in_work[who] = left
                else:
                    del in_work[who]

    return limit


def add_routes(app: web.Application) -> None:
    """Mount every HTTP route of the gateway."""
    app.router.add_post("/v1/messages", submit_message)
    app.router.add_get("/v1/messages/{message_id}", get_message)
    app.router.add_get("/v1/messages/{message_id}/document", get_document)
    from gateway.document_view import get_document_json  # noqa: PLC0415 - it imports this module

    app.router.add_get("/v1/messages/{message_id}/document.json", get_document_json)
    app.router.add_get("/v1/stats", stats)
    from gateway.oversight import add_oversight_routes  # noqa: PLC0415 - it imports this module

    add_oversight_routes(app)
    app.router.add_post("/v1/dead-letters/{message_id}/replay", replay_dead_letter)
    app.router.add_get("/v1/certificates", certificates)
    app.router.add_get("/v1/partners", partners)
    app.router.add_post("/v1/validate", validate_document)
    app.router.add_get("/v1/queues", queues)
    app.router.add_get("/v1/audit", audit_log)
    app.router.add_get("/v1/operators", operator_keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_register_routes(app)
