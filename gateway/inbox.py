"""The pull inbox over HTTP: a party lists, fetches and acknowledges its own waiting documents.

    GET  /v1/inbox                 200 {"party", "lease_seconds", "documents": [{message_id,
                                   sender, document_type, size, available_since, fetches,
                                   retransmission_of, url}]}
    GET  /v1/inbox/{id}            200 the document (application/xml); starts a lease
    POST /v1/inbox/{id}/ack        200 {"message_id", "status": "acknowledged", "repeated"}

A re-transmitted e-Form D (OCP Rule 29(3)) is an entry of its own: its ``message_id`` (the key
in the URLs) is the re-transmission request's and ``retransmission_of`` names the e-Form D
(null on every other entry). Fetching it returns the e-Form D's bytes with ``X-ASW-Message-ID``
the e-Form D's id and ``X-ASW-Retransmission-Request`` the request's; acknowledging it marks the
request delivered and issues no receipt (the e-Form D was receipted on its first pickup), and
the e-Form D's own entry stays acknowledged.

The party is the authenticated caller (``gateway.auth.CALLER``). With ``http.auth = "none"``
(development) nobody is authenticated, so the party is named in the query: ``?party=TH``.
Another party's document, an acknowledged one and an unknown id are all ``404 not-found``:
nobody learns that someone else's document exists. The lease is the receiving party's
``lease_seconds`` option (``pull-inbox`` adapter), 300 s by default. Pickup is exclusive: while
a lease lives, a second poller gets 404 for that document and does not see it listed. A document
fetched but not acknowledged ``escalate_after_seconds`` after it was stored (a day by default) is
dead-lettered with ``pickup-not-acknowledged`` (``escalate_unacknowledged``, run on every listing
and by whoever calls ``escalate_all``). An acknowledgement marks
the message delivered in the journal and, when ``app[INBOX_RECEIPTS]`` is set, issues the
delivery receipt to the sender; repeating it is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog
from aiohttp import web

from adapters.pull_inbox import PullInboxOptions
from gateway.app_keys import CLOCK, INBOX_OPTIONS, INBOX_RECEIPTS, JOURNAL, SETTINGS
from gateway.auth import CALLER
from gateway.core.envelope import MEMBER_STATES
from gateway.core.handover import RETRANSMISSION_REQUEST_HEADER, Handover
from gateway.core.states import InvalidTransition
from gateway.errors import (
    GatewayError,
    NotFound,
    TemporaryFailure,
    Unauthenticated,
)
from gateway.journal import InboxAck, InboxItem, InboxJournal, Journal, inbox_of
from gateway.query import int_param
from gateway.settings import Settings

log = structlog.get_logger("gateway.inbox")

MAX_LIST = 500


def _party(request: web.Request) -> str:
    """The party whose inbox the request is about."""
    if CALLER in request:
        return request[CALLER]
    settings = request.app[SETTINGS]
    named = request.query.get("party", "").upper()
    if settings.http.auth == "none" and named in MEMBER_STATES:
        return named
    if settings.http.auth == "none":
        raise Unauthenticated("Name the party whose inbox this is: ?party=TH (development mode).")
    raise Unauthenticated("The inbox belongs to a party: authenticate as one.")


def pull_inbox_options(settings: Settings) -> dict[str, PullInboxOptions]:
    """The checked options of every pull-inbox party (parsed once, at start)."""
    return {
        party: PullInboxOptions.parse(configured.options)
        for party, configured in sorted(settings.parties.items())
        if configured.adapter == "pull-inbox"
    }


def _options_of(options: Mapping[str, PullInboxOptions], party: str) -> PullInboxOptions:
    """The pull-inbox options of ``party``, or the defaults."""
    return options.get(party) or PullInboxOptions()


def lease_for(options: Mapping[str, PullInboxOptions], party: str) -> float:
    """The fetch lease of ``party``: its pull-inbox ``lease_seconds`` option, or the default."""
    return _options_of(options, party).lease_seconds


async def escalate_unacknowledged(
    journal: Journal | InboxJournal,
    options: Mapping[str, PullInboxOptions],
    party: str,
    *,
    at: datetime,
) -> list[str]:
    """Dead-letter ``party``'s documents fetched but not acknowledged in time; their ids.

    Each becomes DEAD with ``pickup-not-acknowledged`` and leaves the inbox, in the journal's
    dead-letter listing for an operator (who may replay it). Logged as a warning.
    """
    escalated = await inbox_of(journal).inbox_escalate(
        party,
        at=at,
        older_than=timedelta(seconds=_options_of(options, party).escalate_after_seconds),
    )
    for message_id in escalated:
        log.warning(
            "inbox_pickup_not_acknowledged",
            message_id=message_id,
            party=party,
            outcome="dead-lettered",
        )
    return escalated


async def escalate_all(
    journal: Journal | InboxJournal, options: Mapping[str, PullInboxOptions], *, at: datetime
) -> list[str]:
    """``escalate_unacknowledged`` for every party using the pull inbox (for a periodic sweep)."""
    escalated: list[str] = []
    for party in sorted(options):
        escalated += await escalate_unacknowledged(journal, options, party, at=at)
    return escalated


def _inbox(request: web.Request) -> InboxJournal:
    return inbox_of(request.app[JOURNAL])


def _item_json(item: InboxItem) -> dict[str, object]:
    return {
        "message_id": item.message_id,
        "sender": item.sender,
        "document_type": item.document_type,
        "size": item.size,
        "available_since": item.available_since.isoformat(),
        "fetches": item.fetches,
        "retransmission_of": item.retransmission_of,
        "url": f"/v1/inbox/{item.message_id}",
    }


async def list_inbox(request: web.Request) -> web.Response:
    """GET /v1/inbox: the caller's documents waiting now, oldest first."""
    party = _party(request)
    limit = int_param(request.query, "limit", 100, 1, MAX_LIST, clamp=True)
    now = request.app[CLOCK]()
    try:
        await escalate_unacknowledged(
            request.app[JOURNAL], request.app[INBOX_OPTIONS], party, at=now
        )
    except TemporaryFailure as exc:  # e.g. a read-only journal: the listing still answers
        log.warning("inbox_escalation_deferred", party=party, error=exc.code)
    items = await _inbox(request).inbox_waiting(party, at=now, limit=limit)
    return web.json_response(
        {
            "party": party,
            "lease_seconds": lease_for(request.app[INBOX_OPTIONS], party),
            "documents": [_item_json(item) for item in items],
        }
    )


async def fetch_document(request: web.Request) -> web.Response:
    """GET /v1/inbox/{id}: the document as accepted; it is leased to the caller."""
    party = _party(request)
    message_id = request.match_info["message_id"].lower()
    lease = lease_for(request.app[INBOX_OPTIONS], party)
    document = await _inbox(request).inbox_fetch(
        party, message_id, at=request.app[CLOCK](), lease=timedelta(seconds=lease)
    )
    if document is None:
        raise NotFound(
            f"No document {message_id} is waiting in the inbox of {party} (it may be unknown, "
            "acknowledged, or fetched by another poller whose lease has not run out yet)."
        )
    item = document.item
    lease_until = item.lease_until.isoformat() if item.lease_until is not None else ""
    log.info("inbox_fetched", message_id=message_id, party=party, fetches=item.fetches)
    headers = {
        "X-ASW-Message-ID": item.retransmission_of or item.message_id,
        "X-ASW-Sender": item.sender,
        "X-ASW-Document-Type": item.document_type,
        "X-ASW-Lease-Until": lease_until,
        "X-ASW-Fetches": str(item.fetches),
    }
    if item.retransmission_of is not None:
        headers[RETRANSMISSION_REQUEST_HEADER] = item.message_id
    return web.Response(body=document.payload, content_type="application/xml", headers=headers)


async def ack_document(request: web.Request) -> web.Response:
    """POST /v1/inbox/{id}/ack: the caller has the document; it counts as delivered."""
    party = _party(request)
    message_id = request.match_info["message_id"].lower()
    now = request.app[CLOCK]()
    outcome = await _inbox(request).inbox_ack(party, message_id, at=now)
    if outcome is InboxAck.UNKNOWN:
        raise NotFound(f"No document {message_id} is in the inbox of {party}.")
    try:
        await request.app[JOURNAL].mark_delivered(message_id, at=now)
    except InvalidTransition as exc:
        # e.g. RETRYING after the worker failed to write its own bookkeeping: the next retry
        # finds the message acknowledged and marks it delivered then.
        log.warning("inbox_ack_not_marked", message_id=message_id, detail=exc.detail)
    except GatewayError as exc:
        log.warning("inbox_ack_not_marked", message_id=message_id, error=exc.code)
        raise
    await _issue_receipt(request, party, message_id, now)
    log.info("inbox_acknowledged", message_id=message_id, party=party, outcome=outcome.value)
    return web.json_response(
        {
            "message_id": message_id,
            "status": "acknowledged",
            "repeated": outcome is InboxAck.ALREADY_ACKED,
        }
    )


async def _issue_receipt(
    request: web.Request, party: str, message_id: str, delivered_at: datetime
) -> None:
    """Tell the sender its document was picked up (repeats are harmless: same receipt id)."""
    receipts = request.app.get(INBOX_RECEIPTS)
    if receipts is None:
        return
    journal = request.app[JOURNAL]
    view = await journal.get(message_id)
    payload = await journal.payload(message_id)
    if view is None or payload is None:
        return
    record = view.summary.record
    if record.sender == party:
        # The party's own document in its own inbox is the re-transmission request whose entry
        # carried an e-Form D sent again: that e-Form D was receipted on its first pickup.
        return
    await receipts.issue(
        Handover(
            message_id=message_id,
            sender=record.sender,
            receiver=party,
            document_type=record.document_type,
            payload=payload,
        ),
        delivered_at=delivered_at,
    )


def add_inbox_routes(app: web.Application) -> None:
    """Mount the pull-inbox routes."""
    app.router.add_get("/v1/inbox", list_inbox)
    app.router.add_get("/v1/inbox/{message_id}", fetch_document)
    app.router.add_post("/v1/inbox/{message_id}/ack", ack_document)
