"""What operators and parties look up: search, refusals, dead letters; CSV and cursors.

Every list is ordered by a time column, newest first, ties broken by id, and paged with an
opaque ``cursor`` (the ``next`` link of a full page). ``format=csv`` or ``Accept: text/csv``
answers the same page as CSV. A malformed parameter is ``400 parameter-invalid`` naming it; a
value this caller may not use (a party asking for another country's messages) is ``403
parameter-forbidden``: never silently replaced.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDict, MultiMapping

from gateway.app_keys import CLOCK, JOURNAL, OPERATIONS, SETTINGS
from gateway.auth import PRINCIPAL, caller_of
from gateway.core.deadlines import LIMITS, STATUSES, deadlines, selection
from gateway.core.states import MessageState
from gateway.errors import (
    GatewayError,
    NotFound,
    ParameterForbidden,
    ParameterInvalid,
    RejectedMessage,
    ReplayReasonMissing,
)
from gateway.journal import MessageSummary
from gateway.journal.contract import Cursor, DeadlineQuery, MessageQuery, Refusal, RefusalQuery
from gateway.journal.export import refusal_json, summary_json
from gateway.query import (
    MESSAGE_ID,
    bad_parameter,
    bool_param,
    choice_param,
    code_param,
    cursor_param,
    datetime_param,
    document_type_param,
    encode_cursor,
    int_param,
    message_id_param,
    party_param,
    state_param,
    text_param,
    window,
)
from gateway.replay import OperatorAction, record_operator_action
from gateway.web import DOCUMENT_HEADERS, deadline_list_json, message_id_of

T = TypeVar("T")

MAX_PAGE = 1000
MAX_BULK = 500
"""Most dead letters one bulk replay acts on (a larger set: page through it)."""


def wants_csv(request: web.Request) -> bool:
    """``format=csv`` or an Accept header that asks for text/csv (``format=json`` wins)."""
    chosen = choice_param(request.query, "format", ("csv", "json"))
    if chosen is not None:
        return chosen == "csv"
    return "text/csv" in request.headers.get("Accept", "")


def next_link(
    request: web.Request, rows: Sequence[T], limit: int, cursor_of: Callable[[T], Cursor]
) -> str | None:
    """The URL of the next page when this one is full (after ``cursor_of`` its last row),
    else None."""
    if not rows or len(rows) < limit:
        return None
    last = cursor_of(rows[-1])
    query = {k: v for k, v in request.query.items() if k != "cursor"}
    query["cursor"] = encode_cursor(last.at, last.key)
    return str(request.rel_url.with_query(query))


def csv_response(
    name: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> web.Response:
    """``rows`` as CSV with a header line, as a download named ``name``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _csv_value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never a formula when opened in a spreadsheet
    return value


MESSAGE_COLUMNS = (
    "message_id",
    "state",
    "state_at",
    "sender",
    "receiver",
    "document_type",
    "document_id",
    "function_code",
    "referenced_message_id",
    "test",
    "size",
    "digest_sha256",
    "received_at",
    "accepted_at",
    "attempts",
    "last_error",
)


REFUSAL_COLUMNS = (
    "refusal_id",
    "state",
    "at",
    "channel",
    "caller",
    "message_id",
    "sender",
    "receiver",
    "document_type",
    "document_id",
    "size",
    "digest_sha256",
    "code",
    "status",
    "detail",
)


def parties_for(
    request: web.Request, sender: str | None, receiver: str | None
) -> tuple[str | None, str | None, str | None]:
    """(sender, receiver, party) for a message search, refusing what the caller may not ask.

    An operator (no party) may ask anything. A party sees what it sent or receives: a sender
    or receiver of another country is allowed only together with itself on the other side;
    alone it is 403 ``parameter-forbidden``, never replaced by the caller's own country.
    """
    caller = caller_of(request)
    if caller is None or caller in (sender, receiver):
        return sender, receiver, None
    for name, value in (("sender", sender), ("receiver", receiver)):
        if value is not None:
            raise ParameterForbidden(
                f"With the key of {caller} you may list messages {caller} sent or receives: "
                f"{name}={value} needs {'receiver' if name == 'sender' else 'sender'}={caller} "
                "beside it.",
                extensions={"parameter": name},
            )
    return None, None, caller


async def search_messages(request: web.Request) -> web.Response:
    """GET /v1/messages: search by id, document number, parties, type, state, code, window."""
    query = request.query
    limit = int_param(query, "limit", 100, 1, MAX_PAGE, clamp=True)
    sender, receiver, party = parties_for(
        request, party_param(query, "sender"), party_param(query, "receiver")
    )
    since, until = window(query)
    before = datetime_param(query, "before")  # the older paging parameter, kept
    if before is not None:
        until = before if until is None else min(until, before)
    search = MessageQuery(
        message_id=message_id_param(query, "message_id"),
        document_id=text_param(query, "document_id"),
        document_type=document_type_param(query, "document_type"),
        sender=sender,
        receiver=receiver,
        party=party,
        state=state_param(query, "state"),
        error_code=code_param(query, "code"),
        test=bool_param(query, "test"),
        since=since,
        until=until,
        after=cursor_param(query),
        limit=limit,
    )
    as_csv = wants_csv(request)
    found = await request.app[JOURNAL].search_messages(search)
    rows = [summary_json(s) for s in found]
    if as_csv:
        return csv_response("messages", rows, MESSAGE_COLUMNS)
    link = next_link(
        request, found, limit, lambda s: Cursor(s.record.received_at, s.record.message_id)
    )
    return web.json_response({"messages": rows, "next": link})


def _refusal_visible(request: web.Request, refusal: Refusal) -> bool:
    caller = caller_of(request)
    return caller is None or caller in (refusal.sender, refusal.caller)


async def list_refusals(request: web.Request) -> web.Response:
    """GET /v1/refusals: refused submissions, newest first, by sender, code, window, ..."""
    query = request.query
    limit = int_param(query, "limit", 100, 1, MAX_PAGE, clamp=True)
    sender = party_param(query, "sender")
    caller = caller_of(request)
    party = None
    if caller is not None:
        if sender is not None and sender != caller:
            raise ParameterForbidden(
                f"With the key of {caller} you may list only refusals of what {caller} sent.",
                extensions={"parameter": "sender"},
            )
        party = caller
    since, until = window(query)
    state = state_param(query, "state")
    if state is not None and state not in (MessageState.REJECTED, MessageState.DUPLICATE):
        raise bad_parameter("state", "rejected or duplicate")
    search = RefusalQuery(
        message_id=text_param(query, "message_id"),
        document_id=text_param(query, "document_id"),
        document_type=document_type_param(query, "document_type"),
        sender=sender,
        receiver=party_param(query, "receiver"),
        party=party,
        state=state,
        error_code=code_param(query, "code"),
        channel=code_param(query, "channel"),
        since=since,
        until=until,
        after=cursor_param(query),
        limit=limit,
    )
    as_csv = wants_csv(request)
    found = await request.app[JOURNAL].list_refusals(search)
    rows = [_refusal_answer(r) for r in found]
    if as_csv:
        return csv_response("refusals", rows, REFUSAL_COLUMNS)
    link = next_link(request, found, limit, lambda r: Cursor(r.at, r.refusal_id))
    return web.json_response({"refusals": rows, "next": link})


def _refusal_id(request: web.Request) -> str:
    refusal_id = request.match_info["refusal_id"].lower()
    if not MESSAGE_ID.fullmatch(refusal_id):
        raise NotFound("No refusal with that id is known to this gateway (ids are UUIDs).")
    return refusal_id


async def get_refusal(request: web.Request) -> web.Response:
    """GET /v1/refusals/{id}: one refusal with its findings."""
    refusal_id = _refusal_id(request)
    refusal = await request.app[JOURNAL].get_refusal(refusal_id)
    if refusal is None or not _refusal_visible(request, refusal):
        raise NotFound(f"No refusal {refusal_id} is known to this gateway.")
    return web.json_response(_refusal_answer(refusal))


async def get_refusal_document(request: web.Request) -> web.Response:
    """GET /v1/refusals/{id}/document: the refused bytes, when they were kept (a download)."""
    refusal_id = _refusal_id(request)
    journal = request.app[JOURNAL]
    refusal = await journal.get_refusal(refusal_id)
    payload = (
        await journal.refusal_payload(refusal_id)
        if refusal is not None and _refusal_visible(request, refusal)
        else None
    )
    if payload is None:
        raise NotFound(f"No document is kept for refusal {refusal_id}.")
    return web.Response(
        body=payload,
        content_type="application/octet-stream",
        headers={
            **DOCUMENT_HEADERS,
            "Content-Disposition": f'attachment; filename="refused-{refusal_id}.xml"',
        },
    )


def _dead_query(request: web.Request, limit: int) -> MessageQuery:
    query = request.query
    since, until = window(query)
    return MessageQuery(
        receiver=party_param(query, "receiver"),
        sender=party_param(query, "sender"),
        state=MessageState.DEAD,
        error_code=code_param(query, "reason"),
        since=since,
        until=until,
        order="changed",
        after=cursor_param(query),
        limit=limit,
    )


async def dead_letters(request: web.Request) -> web.Response:
    """GET /v1/dead-letters: parked messages by time of death (newest first), filtered, paged."""
    limit = int_param(request.query, "limit", 100, 1, 500, clamp=True)
    search = _dead_query(request, limit)
    as_csv = wants_csv(request)
    journal = request.app[JOURNAL]
    found = await journal.search_messages(search)
    parked = []
    for summary in found:
        view = await journal.get(summary.record.message_id)
        last = view.timeline[-1] if view and view.timeline else None
        entry = summary_json(summary)
        entry["died_at"] = summary.state_at.isoformat()
        entry["reason"] = last.error_code if last and last.error_code else summary.last_error_code
        entry["detail"] = last.detail if last else None
        parked.append(entry)
    if as_csv:
        return csv_response(
            "dead-letters", parked, (*MESSAGE_COLUMNS, "died_at", "reason", "detail")
        )
    link = next_link(request, found, limit, lambda s: Cursor(s.state_at, s.record.message_id))
    return web.json_response({"dead_letters": parked, "next": link})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise RejectedMessage('The body must be JSON: {"reason": ..., "operator": ...}.') from exc
    if not isinstance(body, dict):
        raise RejectedMessage("The body must be a JSON object with reason and operator.")
    return body


def _credential(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    if principal is None:
        return None
    if principal.party is not None:
        return f"party:{principal.party}"
    return f"{principal.method}:{principal.key_id}" if principal.key_id else principal.method


def _role(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    return principal.role if principal is not None else None


def _who_and_why(body: Mapping[str, Any], request: web.Request) -> tuple[str, str]:
    """The operator (a named key's name; the body's ``operator`` only without one) and why."""
    reason = str(body.get("reason") or "").strip()
    principal = request.get(PRINCIPAL)
    named = principal.name if principal is not None else None
    operator = named if named is not None else str(body.get("operator") or "").strip()
    if not reason or not operator:
        raise ReplayReasonMissing("This action needs the operator's name and a reason.")
    return operator[:200], reason[:500]


async def discard_dead_letter(request: web.Request) -> web.Response:
    """POST /v1/dead-letters/{id}/discard {reason, operator}: give up on a dead letter."""
    body = await _json_body(request)
    operator, reason = _who_and_why(body, request)
    message_id = message_id_of(request)
    removed = await request.app[OPERATIONS].discard(
        message_id,
        reason=reason,
        operator=operator,
        credential=_credential(request),
        role=_role(request),
    )
    return web.json_response(
        {"message_id": message_id, "state": "DISCARDED", "parked_copy_removed": removed}
    )


async def replay_many(request: web.Request) -> web.Response:
    """POST /v1/dead-letters/replay: replay the dead letters named or matched, or preview it.

    Body: ``reason``, ``operator``, and either ``message_ids`` (a list) or ``filter``
    (``receiver``, ``sender``, ``reason``, ``since``, ``until``); ``dry_run: true`` answers
    how many would go and where, and changes nothing. At most 500 per call.
    """
    body = await _json_body(request)
    operator, reason = _who_and_why(body, request)
    journal = request.app[JOURNAL]
    ids = body.get("message_ids")
    selection: list[MessageSummary] = []
    if ids is not None:
        if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK:
            raise ParameterInvalid(
                f"message_ids must be a list of 1 to {MAX_BULK} message ids.",
                extensions={"parameter": "message_ids"},
            )
        for message_id in ids:
            if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
                raise ParameterInvalid(
                    f"{message_id!r} is not a message id.", extensions={"parameter": "message_ids"}
                )
            view = await journal.get(message_id)
            if view is None:
                raise NotFound(f"No message {message_id} is known to this gateway.")
            selection.append(view.summary)
    else:
        raw = body.get("filter")
        if not isinstance(raw, dict):
            raise ParameterInvalid(
                "Name the dead letters: message_ids, or a filter object.",
                extensions={"parameter": "filter"},
            )
        params = _filter_mapping(raw)
        since, until = window(params)
        search = MessageQuery(
            receiver=party_param(params, "receiver"),
            sender=party_param(params, "sender"),
            state=MessageState.DEAD,
            error_code=code_param(params, "reason"),
            since=since,
            until=until,
            order="changed",
            limit=MAX_BULK,
        )
        selection = await journal.search_messages(search)
    dead = [s for s in selection if s.state is MessageState.DEAD]
    settings = request.app[SETTINGS]
    where: dict[str, dict[str, Any]] = {}
    for summary in dead:
        receiver = summary.record.receiver
        party = settings.parties.get(receiver)
        entry = where.setdefault(
            receiver, {"count": 0, "adapter": party.adapter if party else None}
        )
        entry["count"] += 1
    preview = {
        "count": len(dead),
        "not_dead": sorted(
            s.record.message_id for s in selection if s.state is not MessageState.DEAD
        ),
        "by_receiver": where,
        "message_ids": [s.record.message_id for s in dead],
    }
    credential = _credential(request)
    if body.get("dry_run") is True:
        await record_operator_action(
            OperatorAction(
                action="replay-preview",
                operator=operator,
                credential=credential,
                target=f"{len(dead)} dead letters",
                reason=reason,
                outcome="previewed",
                role=_role(request),
            ),
            journal=request.app[JOURNAL],
            at=request.app[CLOCK](),
        )
        return web.json_response({"dry_run": True, **preview})
    results = []
    for summary in dead:
        message_id = summary.record.message_id
        try:
            replayed = await request.app[OPERATIONS].replay(
                message_id,
                reason=reason,
                operator=operator,
                credential=credential,
                role=_role(request),
            )
            results.append({"message_id": message_id, "state": replayed.state.value})
        except GatewayError as exc:
            results.append({"message_id": message_id, "error": exc.code, "detail": exc.detail})
    replayed_count = sum(1 for r in results if "state" in r)
    return web.json_response(
        {"dry_run": False, **preview, "replayed": replayed_count, "results": results},
        status=202,
    )


def _filter_mapping(raw: Mapping[str, Any]) -> MultiMapping[str]:
    allowed = {"receiver", "sender", "reason", "since", "until"}
    unknown = set(raw) - allowed
    if unknown:
        raise ParameterInvalid(
            f"Unknown filter field(s): {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(allowed))}.",
            extensions={"parameter": "filter"},
        )
    return MultiDict({k: str(v) for k, v in raw.items() if v is not None})


async def list_deadlines(request: web.Request) -> web.Response:
    """GET /v1/deadlines?status=&type=&country=&limit=&cursor=: the OCP time limits of every
    message that carries any (e-Form D, Origin Declaration, retroactive check and visit
    requests), however old, oldest first, a page at a time; with ``status``, only messages with
    a limit in that status. The journal selects the messages that can have one
    (``gateway.core.deadlines.selection``) in one read per page; the limits are derived here."""
    query = request.query
    status = choice_param(query, "status", set().union(*STATUSES.values()))
    doc_type = document_type_param(query, "type")
    if doc_type is not None and doc_type not in LIMITS:
        raise bad_parameter("type", f"a type that carries time limits: {', '.join(sorted(LIMITS))}")
    limit = int_param(query, "limit", 200, 1, MAX_PAGE, clamp=True)
    now = request.app[CLOCK]()
    chosen = selection(status)
    facts = await request.app[JOURNAL].deadline_facts(
        DeadlineQuery(
            relations=chosen.relations,
            open_only=chosen.open_only,
            document_type=doc_type,
            party=party_param(query, "country"),
            received_before=(
                None if chosen.min_days is None else now - timedelta(days=chosen.min_days)
            ),
            after=cursor_param(query),
            limit=limit,
        )
    )
    rows = []
    for fact in facts:
        record = fact.summary.record
        found = deadline_list_json(
            deadlines(record.document_type, fact.delivered_at, fact.links, now)
        )
        if (status is None and found) or any(d["status"] == status for d in found):
            rows.append(summary_json(fact.summary) | {"deadlines": found})
    link = next_link(
        request,
        facts,
        limit,
        lambda f: Cursor(f.summary.record.received_at, f.summary.record.message_id),
    )
    return web.json_response({"messages": rows, "next": link, "scanned": len(facts)})


def add_oversight_routes(app: web.Application) -> None:
    """Mount the search, refusal, dead-letter and deadline routes."""
    app.router.add_get("/v1/deadlines", list_deadlines)
    app.router.add_get("/v1/messages", search_messages)
    app.router.add_get("/v1/refusals", list_refusals)
    app.router.add_get("/v1/refusals/{refusal_id}", get_refusal)
    app.router.add_get("/v1/refusals/{refusal_id}/document", get_refusal_document)
    app.router.add_get("/v1/dead-letters", dead_letters)
    app.router.add_post("/v1/dead-letters/replay", replay_many)
    app.router.add_post("/v1/dead-letters/{message_id}/discard", discard_dead_letter)


def _refusal_answer(refusal: Refusal) -> dict[str, Any]:
    """A refusal as the API shows it: its journalled facts and whether its bytes were kept."""
    return refusal_json(refusal) | {"payload_kept": refusal.payload_kept}
