"""Submission: the one path every inbound document takes, whatever channel it came by.

HTTP, the drop-folder intake and other channels all call ``Submissions.submit``:

1. run the pure ingest checks (in a thread when the document is large);
2. for a receipt or Customs Response, check that its sender may refer to the message it names
   (``gateway.core.receipts.authorise_reference``: 403 ``receipt-not-allowed`` or
   ``answer-not-allowed`` otherwise), before anything is journalled;
3. record the message in the journal: a known message id returns the first answer, a known
   business key under a new message id is a conflict (409 naming the original);
4. publish with a confirm, then mark the message QUEUED, and link a receipt or answer to the
   message it refers to. The link is always written; the original's state moves to RECEIPTED
   or ANSWERED only once it is delivered (``gateway.core.states``), so an answer never stops
   a delivery still under way; ``settle_links`` catches up when the delivery comes later.
5. a re-transmission request the journal can serve is re-delivered from it instead of being
   published (``gateway.core.retransmission``); a certified-exporter lookup or AEO status query
   for a register kept here is answered by the gateway with a signed response submitted through
   this same path, instead of being published (``gateway.core.register_queries``).

A document is accepted (202) only once both the journal row and RabbitMQ's confirm exist. If the
publish fails (503) the row stays ACCEPTED, unconfirmed: the sender's resubmission under the same
message id publishes it, and ``sweep_unconfirmed`` publishes what nobody resent. Either way the
business key stays with the first message id, and the delivery claim keeps the receiver from
seeing the document twice.

No broker copy storms (issue 14): once RabbitMQ confirmed a publish the message is accepted,
whether or not the journal could note QUEUED (that note is bookkeeping: the delivery claim moves
an ACCEPTED row on by itself). The process remembers such ids (``published_unrecorded``); a
resubmission or a sweep of one of them only tries the QUEUED note again and never publishes a
second copy while the first is in the broker.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway import metrics
from gateway.broker import Broker, Outgoing
from gateway.core.conversations import authorise_step
from gateway.core.documents import document_id_of
from gateway.core.envelope import DocumentType, Envelope, read_envelope
from gateway.core.headers import MessageHeaders
from gateway.core.lease import ClaimResult
from gateway.core.parsing import parse
from gateway.core.pipeline import Accepted, Ingest, with_findings
from gateway.core.receipts import Original, ReceiptSignerPin, authorise_reference
from gateway.core.register_queries import (
    RELATION_AEO_QUERY,
    RELATION_CE_LOOKUP,
    AnswerHere,
)
from gateway.core.register_queries import Forward as RegisterForward
from gateway.core.retransmission import (
    RELATION_REQUEST,
    RELATION_RESENT,
    Forward,
    MarkedCopy,
    Redeliver,
    decide_marked_copy,
    decide_retransmission,
)
from gateway.core.routing import Route
from gateway.core.rules.conversations import FOLLOWED_STEPS, followed_rules
from gateway.core.signatures import SigningKey
from gateway.core.states import MessageState
from gateway.core.topology import Topology
from gateway.core.trust import TrustStore
from gateway.errors import (
    Draining,
    DuplicateMessage,
    GatewayError,
    MessageIdReused,
    RejectedMessage,
    TemporaryFailure,
)
from gateway.journal import AcceptResult, Journal, MessageRecord, MessageView
from gateway.journal.contract import Refusal
from gateway.offload import offload
from gateway.register_answers import QueryPlan, RegisterAnswers
from gateway.register_keeper import RegisterKeeper

log = structlog.get_logger("gateway.submission")

REFUSAL_PAYLOAD_MAX_BYTES = 256 * 1024
"""Refused documents up to this size are kept in the journal for audit; larger: digest only."""
_HEADER_TEXT_MAX = 200
"""Header facts of a refused document are cut to this length (hostile input stays bounded)."""
REMEMBERED_PUBLISHES = 10_000
"""Ids published with QUEUED not yet noted that a process remembers (oldest forgotten first)."""

_RELATIONS = {
    DocumentType.DELIVERY_RECEIPT: ("receipt", MessageState.RECEIPTED),
    DocumentType.CUSTOMS_RESPONSE: ("response", MessageState.ANSWERED),
}
_QUERY_ANSWERS = frozenset({RELATION_CE_LOOKUP, RELATION_AEO_QUERY})
"""Relations that answer a register query: the query is ANSWERED once delivered."""
_SETTLED = (
    *_RELATIONS.values(),
    *((relation, MessageState.ANSWERED) for relation in sorted(_QUERY_ANSWERS)),
)


async def settle_links(journal: Journal, message_id: str, *, at: datetime) -> None:
    """After a delivery: take up the receipts and answers linked while it was under way.

    Called where DELIVERED was written and no new receipt of this gateway follows (that
    receipt's own link does the same). Never raises: the delivery itself is done.
    """
    try:
        view = await journal.get(message_id)
        if view is None:
            return
        relations = _linked_relations(view, message_id)
        for relation_name, state in _SETTLED:  # receipt first, then answers
            if relation_name in relations:
                await journal.transition(message_id, state, at=at)
    except GatewayError as exc:
        log.warning("links_not_settled", original=message_id, error=exc.code)


def _linked_relations(view: MessageView, message_id: str) -> set[str]:
    """The relations (``receipt``, ``response``, ...) linked to ``message_id`` in ``view``."""
    return {link.relation for link in view.links if link.message_id == message_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted:
    """The answer to one submission: the same every time the same message comes back."""

    accepted: Accepted
    state: MessageState
    resubmitted: bool


def _original_of(record: MessageRecord) -> Original:
    """What the core's decisions need to know of a journalled message."""
    return Original(
        message_id=record.message_id,
        sender=record.sender,
        receiver=record.receiver,
        document_type=record.document_type,
    )


def outgoing(
    envelope: Envelope,
    route: Route,
    payload: bytes,
    *,
    digest: str,
    channel: str,
    correlation_id: str | None = None,
    replays: int | None = None,
) -> Outgoing:
    """The AMQP message for a document: the header facts the delivery side reads, as headers."""
    return Outgoing(
        exchange=route.exchange,
        routing_key=route.routing_key,
        body=payload,
        message_id=envelope.message_id,
        correlation_id=correlation_id,
        headers=MessageHeaders(
            sender=envelope.sender.country,
            receiver=envelope.receiver.country,
            document_type=envelope.document_type.value,
            function=envelope.function.value,
            test=envelope.test,
            digest=digest,
            channel=channel,
            replay_count=replays,
        ).to_amqp(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Claimed:
    """What could be read of a refused document's header (None where it could not)."""

    message_id: str | None = None
    sender: str | None = None
    receiver: str | None = None
    document_type: str | None = None
    document_id: str | None = None
    test: bool | None = None


def _bounded(text: str | None) -> str | None:
    return None if text is None else text[:_HEADER_TEXT_MAX]


def _claimed(envelope: Envelope, document_id: str | None) -> _Claimed:
    return _Claimed(
        message_id=_bounded(envelope.message_id),
        sender=envelope.sender.country,
        receiver=envelope.receiver.country,
        document_type=envelope.document_type.value,
        document_id=_bounded(document_id),
        test=envelope.test,
    )


def _read_claimed(ingest: Ingest, data: bytes) -> _Claimed:
    """The header facts of a document the ingest refused, as far as they can be read."""
    try:
        root = parse(data, ingest.limits)
        envelope = read_envelope(root)
    except Exception:  # noqa: BLE001 - unreadable is an answer here, not a failure
        return _Claimed()
    try:
        document_id = document_id_of(root, envelope.document_type)
    except Exception:  # noqa: BLE001
        document_id = None
    return _claimed(envelope, document_id)


def refusal_state(error: GatewayError) -> MessageState:
    """DUPLICATE for a business key another message holds, REJECTED for every other refusal."""
    return MessageState.DUPLICATE if isinstance(error, DuplicateMessage) else MessageState.REJECTED


def is_refusal(error: GatewayError) -> bool:
    """A refusal is the sender's fault (4xx): it is journalled; a 5xx is ours and is not."""
    return isinstance(error, RejectedMessage) and 400 <= error.http_status < 500


def _log_not_accepted(exc: GatewayError, channel: str, started: float) -> None:
    rejected = isinstance(exc, RejectedMessage)
    log.info(
        "message_rejected" if rejected else "message_not_accepted",
        outcome="rejected" if rejected else "unavailable",
        channel=channel,
        error=exc.code,
        status=exc.http_status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )


class Submissions:
    """Checks, journals and publishes inbound documents."""

    def __init__(
        self,
        ingest: Ingest,
        broker: Broker,
        journal: Journal,
        clock: Callable[[], datetime],
        *,
        trust: Callable[[], TrustStore | None],
        offload_bytes: int,
        remote_gateways: Mapping[str, ReceiptSignerPin] | None = None,
        refusal_payload_max_bytes: int = REFUSAL_PAYLOAD_MAX_BYTES,
        answer_keys: Mapping[str, SigningKey] | None = None,
        answer_register_queries: bool = True,
    ) -> None:
        self.ingest = ingest
        # Parties reached through another gateway: only their gateway's receipts come in here.
        self._remote_gateways = dict(remote_gateways or {})
        self._trust = trust
        self._broker = broker
        self._journal = journal
        self._clock = clock
        self._offload_bytes = offload_bytes
        self._refusal_payload_max_bytes = refusal_payload_max_bytes
        self._registers = RegisterKeeper(journal, ingest.validator.mra)
        # Register queries are answered here with the asked country's gateway key (the one that
        # signs its receipts), where the register is kept here (gateway.core.register_queries).
        self._answers = RegisterAnswers(journal, answer_keys or {}, enabled=answer_register_queries)
        self._published: OrderedDict[str, float] = OrderedDict()
        """Confirmed by RabbitMQ, QUEUED not noted yet: message id -> when (monotonic)."""
        self._draining = False

    @property
    def draining(self) -> bool:
        """True once the gateway is stopping (``drain``)."""
        return self._draining

    def drain(self) -> None:
        """Refuse new documents from outside (503 ``draining``) from now on; the gateway is
        stopping. Its own receipts (``sign_with``) are still taken: they finish deliveries."""
        self._draining = True

    @property
    def published_unrecorded(self) -> int:
        """How many confirmed publishes still wait for their QUEUED note."""
        return len(self._published)

    @property
    def registers(self) -> RegisterKeeper:
        """The register checks (shared with ``POST /v1/validate``)."""
        return self._registers

    @property
    def journal(self) -> Journal:
        """The journal submissions are recorded in."""
        return self._journal

    async def submit(
        self,
        data: bytes,
        *,
        channel: str,
        caller: str | None = None,
        correlation_id: str | None = None,
        sign_with: SigningKey | None = None,
        retransmission_request: str | None = None,
    ) -> Submitted:
        """Accept ``data`` durably or raise the reason; logs the outcome either way.

        ``sign_with`` is for documents this gateway issues itself (its delivery receipts, signed
        with the receiving side's gateway key); no outside channel ever passes it.
        ``retransmission_request`` is set when the document came marked as the re-transmission
        of an e-Form D on that request (``X-ASW-Retransmission-Request``, from the issuing
        country's gateway): an e-Form D journalled here is re-delivered, not accepted again.
        """
        started = time.perf_counter()
        now = self._clock()
        try:
            if self._draining and sign_with is None:
                raise Draining(
                    "This gateway node is stopping and takes no new messages; send the message "
                    "again shortly (another node may take it)."
                )
            trust = self._trust()
            accepted = await offload(
                len(data),
                self._offload_bytes,
                lambda: self.ingest.accept(
                    data, now=now, trust=trust, caller=caller, sign_with=sign_with
                ),
            )
        except GatewayError as exc:
            _log_not_accepted(exc, channel, started)
            metrics.refused(exc, channel, started, sender=caller)
            if sign_with is None:
                await self.record_refusal(exc, data, channel=channel, caller=caller)
            raise
        envelope = accepted.envelope
        # Scoped, not bound for good: a receipt is submitted from inside the delivery of the
        # document it answers, whose own outcome line must keep that document's context.
        with structlog.contextvars.bound_contextvars(
            message_id=envelope.message_id,
            sender=envelope.sender.country,
            recipient=envelope.receiver.country,
            doc_type=envelope.document_type.value,
        ):
            try:
                if retransmission_request is not None:
                    relayed = await self._marked_copy(
                        accepted, caller, retransmission_request, channel, correlation_id
                    )
                    if relayed is not None:
                        log.info(
                            "retransmission_relayed",
                            outcome="relayed",
                            channel=channel,
                            retransmission_request=retransmission_request,
                            duration_ms=round((time.perf_counter() - started) * 1000, 2),
                        )
                        return relayed
                accepted = await self._registers.check(accepted, now=now)
                original = await self._authorise(accepted, issued_here=sign_with is not None)
                retransmission = await self._retransmission(envelope)
                accepted = await self._authorise_step(accepted)
                query = await self._answers.plan(accepted)
                submitted = await self._record_and_publish(
                    accepted,
                    channel,
                    correlation_id,
                    now,
                    original,
                    retransmission=retransmission,
                    query=query,
                )
            except GatewayError as exc:
                _log_not_accepted(exc, channel, started)
                metrics.refused(exc, channel, started, envelope=envelope)
                if sign_with is None:
                    await self.record_refusal(
                        exc,
                        data,
                        channel=channel,
                        caller=caller,
                        claimed=_claimed(envelope, accepted.document_id),
                    )
                raise
            metrics.accepted(envelope, channel, started)
            log.info(
                "message_resubmitted" if submitted.resubmitted else "message_accepted",
                outcome="resubmitted" if submitted.resubmitted else "accepted",
                channel=channel,
                route=accepted.route.routing_key,
                state=submitted.state.value,
                signer=accepted.signer.fingerprint if accepted.signer else None,
                signed_by_gateway=accepted.signed_by_gateway,
                signature_warnings=list(accepted.warnings) or None,
                size=len(data),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return submitted

    async def record_refusal(
        self,
        error: GatewayError,
        data: bytes | None,
        *,
        channel: str,
        caller: str | None,
        claimed: _Claimed | None = None,
        size: int | None = None,
    ) -> str | None:
        """Journal a refused submission (4xx) for audit; its refusal id, or None if not written.

        Never raises: the caller must get the original refusal even when the journal cannot
        take this record (logged as ``refusal_not_journalled``). ``data`` None (the body never
        arrived whole) records ``size`` alone. The bytes are kept up to the configured bound.
        """
        if not is_refusal(error):
            return None
        refusal_id = str(uuid.uuid4())
        try:
            if claimed is None:
                claimed = (
                    _Claimed()
                    if data is None
                    else await offload(
                        len(data), self._offload_bytes, lambda: _read_claimed(self.ingest, data)
                    )
                )
            kept = (
                data if data is not None and len(data) <= self._refusal_payload_max_bytes else None
            )
            await self._journal.record_refusal(
                Refusal(
                    refusal_id=refusal_id,
                    state=refusal_state(error),
                    at=self._clock(),
                    channel=channel,
                    caller=caller,
                    message_id=claimed.message_id,
                    sender=claimed.sender,
                    receiver=claimed.receiver,
                    document_type=claimed.document_type,
                    document_id=claimed.document_id,
                    test=claimed.test,
                    size=len(data) if data is not None else (size or 0),
                    digest=hashlib.sha256(data).hexdigest() if data is not None else None,
                    error_code=error.code,
                    status=error.http_status,
                    detail=error.detail[:2000],
                    findings=tuple(f.to_json() for f in error.findings),
                ),
                kept,
            )
        except Exception as exc:  # noqa: BLE001 - a refusal must never become a 5xx
            log.warning(
                "refusal_not_journalled",
                error=error.code,
                journal_error=exc.code if isinstance(exc, GatewayError) else type(exc).__name__,
            )
            return None
        return refusal_id

    async def _authorise(self, accepted: Accepted, *, issued_here: bool) -> MessageView | None:
        """For a receipt or answer: the message it refers to, once its sender may refer to it.

        Raises ``ReceiptNotAllowed`` or ``AnswerNotAllowed``; None when the document refers to
        nothing, or to a message this journal does not know (accepted unlinked).
        """
        envelope = accepted.envelope
        if envelope.document_type not in _RELATIONS:
            return None
        view = await self._referenced(envelope)
        original = _original_of(view.summary.record) if view is not None else None
        authorise_reference(
            envelope,
            original,
            issued_here=issued_here,
            signer=accepted.signer,
            remote_gateways=self._remote_gateways,
        )
        return view

    async def _authorise_step(self, accepted: Accepted) -> Accepted:
        """For a step of an origin conversation (rejection, clarification, retroactive check,
        verification visit, origin determination): refuse it unless its sender is the party
        asked (``reply-not-allowed``), then check it against the message it follows
        (``FOLLOWED_RULES``: errors refuse it, 422), before anything is journalled."""
        envelope = accepted.envelope
        reference = envelope.referenced_message_id
        if reference is None or authorise_step(envelope, None) is None:
            return accepted  # not a conversation step
        view = await self._journal.get(reference)
        if view is None:
            return accepted
        record = view.summary.record
        authorise_step(
            envelope,
            _original_of(record),
        )
        doc = envelope.document_type
        if doc not in FOLLOWED_STEPS:
            return accepted
        followed = None
        if doc is DocumentType.ORIGIN_DETERMINATION:
            held = await self._journal.payload(reference)
            followed = parse(held, self.ingest.limits) if held is not None else None
        return with_findings(
            accepted, tuple(followed_rules(accepted.root, doc, record.document_type, followed))
        )

    async def _retransmission(self, envelope: Envelope) -> Redeliver | Forward | None:
        """For a re-transmission request: re-deliver from the journal or forward (Rule 29(3)).

        Raises ``RetransmissionNotAllowed`` before anything is journalled; None for any other
        document type.
        """
        if envelope.document_type is not DocumentType.RETRANSMISSION_REQUEST:
            return None
        reference = envelope.referenced_message_id
        view = await self._journal.get(reference) if reference is not None else None
        if view is None:
            return Forward()
        record = view.summary.record
        held = await self._journal.payload(record.message_id) is not None
        return decide_retransmission(envelope, _original_of(record), payload_held=held)

    async def _referenced(self, envelope: Envelope) -> MessageView | None:
        """The journalled message a receipt or answer refers to, or None."""
        reference = envelope.referenced_message_id
        if envelope.document_type not in _RELATIONS or reference is None:
            return None
        return await self._journal.get(reference)

    async def _record_and_publish(
        self,
        accepted: Accepted,
        channel: str,
        correlation_id: str | None,
        now: datetime,
        original: MessageView | None,
        *,
        retransmission: Redeliver | Forward | None = None,
        query: QueryPlan | None = None,
    ) -> Submitted:
        envelope = accepted.envelope
        # Broker down or blocked: refuse before journalling, so nothing is left to be swept
        # and published later; a message refused here is never delivered.
        self._broker.check_publishable()
        outcome = await self._journal.record_accepted(
            MessageRecord(
                message_id=envelope.message_id,
                sender=envelope.sender.country,
                receiver=envelope.receiver.country,
                document_type=envelope.document_type.value,
                document_id=accepted.document_id,
                function_code=envelope.function.value,
                referenced_message_id=envelope.referenced_message_id,
                test=envelope.test,
                size=len(accepted.payload),
                digest=accepted.digest,
                received_at=now,
            ),
            accepted.payload,
            at=now,
        )
        if outcome.result is AcceptResult.CONFLICT:
            raise DuplicateMessage(
                f"The {envelope.document_type.value} document {accepted.document_id!r} from "
                f"{envelope.sender.country} with function code {envelope.function.value} was "
                f"already submitted as message {outcome.message_id}. To change it, send a "
                "replacement (function code 5) or a cancellation (1) referencing that message.",
                extensions={"original_message_id": outcome.message_id},
            )
        resubmitted = outcome.result is AcceptResult.RESUBMITTED
        if resubmitted and not outcome.same_payload:
            raise MessageIdReused(
                f"Message id {envelope.message_id} was first used for a different document on "
                f"{outcome.accepted_at.isoformat()}; every message needs its own id."
            )
        if resubmitted and outcome.state is not MessageState.ACCEPTED:
            return Submitted(accepted=accepted, state=outcome.state, resubmitted=True)
        await self._registers.keep(accepted, at=now)  # again is a no-op
        if resubmitted and envelope.message_id in self._published:
            # Confirmed by the broker before; only the QUEUED note was missing.
            log.info("message_publish_not_repeated", reason="already-confirmed")
            await self._note_queued(envelope.message_id)
        else:
            # New, or known but never confirmed by the broker: publish (again) now.
            await self._dispatch(accepted, channel, correlation_id, retransmission, query)
        await self._link_to_original(envelope, original)
        await self._link_conversation(envelope)
        return Submitted(accepted=accepted, state=MessageState.QUEUED, resubmitted=resubmitted)

    async def _dispatch(
        self,
        accepted: Accepted,
        channel: str,
        correlation_id: str | None,
        retransmission: Redeliver | Forward | None,
        query: QueryPlan | None,
    ) -> None:
        """Publish a journalled message, re-deliver what a re-transmission request names, or
        answer a register query here."""
        if isinstance(retransmission, Redeliver):
            await self._publish_retransmission(accepted, retransmission, channel, correlation_id)
        elif query is not None and isinstance(query.decision, AnswerHere):
            await self._answer_query(accepted, query)
        else:
            if query is not None and isinstance(query.decision, RegisterForward):
                log.info("register_query_forwarded", reason=query.decision.reason)
            await self._publish(accepted, channel, correlation_id)

    async def _answer_query(self, accepted: Accepted, query: QueryPlan) -> None:
        """Answer a CE lookup or AEO status query from the register kept here.

        The response is submitted through this same path (journalled, queued, delivered by the
        asker's adapter, linked to the query), signed with the asked country's gateway key; its
        message id is stable, so answering again (a resubmission, the sweep) finds the first.
        The query is not forwarded: the gateway took it for the register's keeper, so it goes
        DELIVERING, DELIVERED (saying so) and ANSWERED.
        """
        envelope = accepted.envelope
        answer_id, data, key = self._answers.response(accepted, query, created=self._clock())
        # Answered before (signatures differ each time): the first answer stands.
        with contextlib.suppress(MessageIdReused):
            await self.submit(data, channel="register", sign_with=key)
        now = self._clock()
        register = query.query.register.replace("-", " ")
        day = query.query.day.isoformat()
        claim = await self._journal.claim_delivery(envelope.message_id, at=now)
        if claim is not ClaimResult.GRANTED:
            return  # taken over already (a concurrent resubmission or sweep)
        await self._journal.transition(
            envelope.message_id,
            MessageState.DELIVERED,
            at=now,
            detail=(
                f"answered by the gateway from {query.query.country}'s {register} register as "
                f"it stood on {day} (response {answer_id}); not forwarded"
            ),
        )
        await settle_links(self._journal, envelope.message_id, at=now)
        log.info("register_query_answered", answer=answer_id, register=query.query.register)

    async def _link_to_original(self, envelope: Envelope, view: MessageView | None) -> None:
        """A receipt or answer joins the timeline of the message it refers to, if known here.

        The link is always written; the state table moves the original to RECEIPTED or
        ANSWERED only if it is delivered already (otherwise ``settle_links`` does it later).
        A receipt for a message answered before its delivery was recorded takes it on to
        ANSWERED.
        """
        relation = _RELATIONS.get(envelope.document_type)
        if relation is None or view is None:
            if relation is not None and envelope.referenced_message_id is not None:
                log.info("reference_unknown", original=envelope.referenced_message_id)
            return
        original = view.summary.record.message_id
        relation_name, state = relation
        now = self._clock()
        try:
            if not await self._journal.link(original, envelope.message_id, relation_name, at=now):
                return
            await self._journal.transition(original, state, at=now)
            if state is MessageState.RECEIPTED and "response" in _linked_relations(view, original):
                await self._journal.transition(original, MessageState.ANSWERED, at=now)
        except GatewayError as exc:  # purged meanwhile, or in a state that refuses it
            log.info("link_not_recorded", original=original, error=exc.code)

    async def _link_conversation(self, envelope: Envelope) -> None:
        """Join a conversation step to the message it follows (``gateway.core.conversations``)
        and a re-transmission request to the e-Form D it concerns (Rule 29(3)).

        A request is the ``retransmission-request`` of the e-Form D it names, when known here;
        an e-Form D whose header refers to a request journalled here (the issuing NSW sending
        it again) is that request's ``retransmitted`` answer, and the request is ANSWERED.
        """
        reference = envelope.referenced_message_id
        if reference is None:
            return
        now = self._clock()
        step = authorise_step(envelope, None)
        try:
            if step is not None:
                # Authorised before it was journalled; linked when the followed message is here.
                if await self._journal.get(reference) is not None:
                    linked = await self._journal.link(
                        reference, envelope.message_id, step.relation, at=now
                    )
                    if linked and step.relation in _QUERY_ANSWERS:
                        # Absorbed until the query is delivered; settle_links catches up then.
                        await self._journal.transition(reference, MessageState.ANSWERED, at=now)
            elif envelope.document_type is DocumentType.RETRANSMISSION_REQUEST:
                if await self._journal.get(reference) is not None:
                    await self._journal.link(
                        reference, envelope.message_id, RELATION_REQUEST, at=now
                    )
            elif envelope.document_type is DocumentType.FORM_D:
                await self._link_resent(reference, envelope.message_id)
        except GatewayError as exc:  # purged meanwhile, or in a state that refuses it
            log.info("link_not_recorded", original=reference, error=exc.code)

    async def _publish_retransmission(
        self,
        accepted: Accepted,
        decision: Redeliver,
        channel: str,
        correlation_id: str | None,
    ) -> None:
        """Queue the journalled e-Form D again for its receiver, under the request's id.

        The bytes are the journal's (signature intact), the AMQP message id is the request's
        (whose row the delivery claims and marks delivered), ``x-asw-retransmission-of`` names
        the e-Form D. No row is added for the e-Form D: the counts do not change.
        """
        original_id = decision.original_message_id
        payload = await self._journal.payload(original_id)
        view = await self._journal.get(original_id)
        if payload is None or view is None:  # purged between the decision and now
            await self._publish(accepted, channel, correlation_id)
            return
        await self._publish_copy(
            view.summary.record,
            payload,
            receiver=decision.requester,
            request_id=accepted.envelope.message_id,
            channel=channel,
            correlation_id=correlation_id,
        )
        await self._journal.transition(
            accepted.envelope.message_id,
            MessageState.QUEUED,
            at=self._clock(),
            detail=f"re-delivering e-Form D {original_id} from the journal (OCP Rule 29(3))",
        )
        log.info("retransmission_queued", original=original_id, requester=decision.requester)

    async def _publish_copy(
        self,
        record: MessageRecord,
        payload: bytes,
        *,
        receiver: str,
        request_id: str,
        channel: str,
        correlation_id: str | None,
        relayed_by: str | None = None,
    ) -> None:
        """Publish the journalled e-Form D ``record`` again for ``receiver``, as the
        re-transmission asked for by ``request_id`` (the AMQP message id)."""
        await self._broker.publish(
            Outgoing(
                exchange=self.ingest.routes.topology.route_exchange,
                routing_key=Topology.routing_key(receiver, DocumentType.FORM_D),
                body=payload,
                message_id=request_id,
                correlation_id=correlation_id,
                headers=MessageHeaders(
                    sender=record.sender,
                    receiver=receiver,
                    document_type=record.document_type,
                    function=record.function_code,
                    test=record.test,
                    digest=record.digest,
                    channel=channel,
                    retransmission_of=record.message_id,
                    retransmission_relayed_by=relayed_by,
                ).to_amqp(),
            )
        )

    async def _marked_copy(
        self,
        accepted: Accepted,
        caller: str | None,
        request_id: str,
        channel: str,
        correlation_id: str | None,
    ) -> Submitted | None:
        """A copy the issuing country's gateway forwarded again as a re-transmission.

        When this journal holds the e-Form D (``decide_marked_copy``: same bytes, from that
        gateway) it is re-delivered to its receiver here, marked, with no new row; a request
        journalled here (it went out through this gateway) gets it linked as its answer.
        None: not held here, to be accepted like any first arrival.
        """
        envelope = accepted.envelope
        view = await self._journal.get(envelope.message_id)
        record = view.summary.record if view is not None else None
        held = _original_of(record) if record is not None else None
        copy = MarkedCopy(
            request_id=request_id,
            caller=caller,
            caller_is_gateway=caller in self._remote_gateways,
            digest=accepted.digest,
        )
        decision = decide_marked_copy(
            envelope, copy, held, held_digest=record.digest if record else None
        )
        if decision is None or view is None or record is None:
            return None
        self._broker.check_publishable()
        await self._publish_copy(
            record,
            accepted.payload,
            receiver=decision.receiver,
            request_id=request_id,
            channel=channel,
            correlation_id=correlation_id,
            relayed_by=caller,
        )
        await self._link_resent(request_id, envelope.message_id)
        return Submitted(accepted=accepted, state=view.summary.state, resubmitted=True)

    async def _link_resent(self, request_id: str, formd_id: str) -> None:
        """The e-Form D sent again is the answer of the request, if journalled here (ANSWERED)."""
        request = await self._journal.get(request_id)
        if request is None or request.summary.record.document_type != (
            DocumentType.RETRANSMISSION_REQUEST.value
        ):
            return
        now = self._clock()
        try:
            if await self._journal.link(request_id, formd_id, RELATION_RESENT, at=now):
                await self._journal.transition(request_id, MessageState.ANSWERED, at=now)
        except GatewayError as exc:  # purged meanwhile, or in a state that refuses it
            log.info("link_not_recorded", original=request_id, error=exc.code)

    async def _publish(self, accepted: Accepted, channel: str, correlation_id: str | None) -> None:
        envelope = accepted.envelope
        await self._broker.publish(
            outgoing(
                envelope,
                accepted.route,
                accepted.payload,
                digest=accepted.digest,
                channel=channel,
                correlation_id=correlation_id,
            )
        )
        self._published[envelope.message_id] = time.monotonic()
        self._published.move_to_end(envelope.message_id)
        while len(self._published) > REMEMBERED_PUBLISHES:
            self._published.popitem(last=False)
        await self._note_queued(envelope.message_id)

    async def _note_queued(self, message_id: str) -> None:
        """Note QUEUED after a confirmed publish; a journal that fails for now only delays it.

        The message is accepted either way (its row and the broker's copy exist), so a
        temporary failure is logged and the id stays remembered: a resubmission or the sweep
        notes it later, and neither publishes it again.
        """
        try:
            await self._journal.transition(message_id, MessageState.QUEUED, at=self._clock())
        except TemporaryFailure as exc:
            log.warning("journal_queued_not_noted", error=exc.code, detail=exc.detail)
            return
        self._published.pop(message_id, None)

    async def sweep_unconfirmed(self, *, older_than: timedelta) -> int:
        """Publish journalled messages whose publish was never confirmed; return how many.

        Re-running the ingest checks on the stored payload gives back the same route; a copy
        published twice (by two sweepers, or a sweeper and a resubmission) is delivered once
        thanks to the delivery claim.
        """
        cutoff = self._clock() - older_than
        stale = await self._journal.list_messages(
            state=MessageState.ACCEPTED, before=cutoff, limit=100
        )
        published = 0
        for summary in stale:
            message_id = summary.record.message_id
            if message_id in self._published:
                # In the broker already: note QUEUED now, never a second copy.
                await self._note_queued(message_id)
                continue
            payload = await self._journal.payload(message_id)
            if payload is None:
                continue
            with structlog.contextvars.bound_contextvars(message_id=message_id):
                try:
                    accepted = self.ingest.accept(
                        payload, now=summary.record.received_at, trust=self._trust()
                    )
                    await self._registers.keep(accepted, at=summary.record.received_at)
                    retransmission = await self._retransmission(accepted.envelope)
                    query = await self._answers.plan(accepted)
                    await self._dispatch(accepted, "sweep", None, retransmission, query)
                    # Authorised when first accepted; the link was never made if the publish
                    # failed then.
                    original = await self._referenced(accepted.envelope)
                    await self._link_to_original(accepted.envelope, original)
                    await self._link_conversation(accepted.envelope)
                except GatewayError as exc:
                    log.warning("message_sweep_failed", error=exc.code, detail=exc.detail)
                    if not isinstance(exc, RejectedMessage):
                        break
                    continue
            published += 1
            log.info("message_swept", outcome="queued")
        return published
