"""The delivery side: consume a receiver's queue and hand each document to its adapter.

Before handing a document over, the worker claims it in the journal: only one claimant may
hand over a message, and a redelivery of a message already delivered (after a crash between
hand-over and ack) is acked without reaching the receiver again. A message is acked only after
the adapter returned, i.e. after the receiver durably has the document. A temporary failure
sends the message to the next step of the retry schedule; when the schedule is used up, or on
a permanent failure, the message is dead-lettered with its reason code, original route,
attempt count and last error. Whatever is published on the way (retry or dead letter) is
confirmed by RabbitMQ before the original is acked.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from gateway import metrics
from gateway.broker import RETRY_DELAY_HEADER, Broker, MessageHandler, Outgoing, amqp_headers
from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.handover import Adapter, Handover, ReceiverQuery
from gateway.core.parsing import ParseLimits, parse
from gateway.core.retry import GiveUp, RetrySchedule
from gateway.core.signatures import signer_chain
from gateway.core.states import MessageState
from gateway.core.topology import Topology
from gateway.core.trust import TrustStore
from gateway.errors import (
    DigestMismatch,
    GatewayError,
    PeerUnavailable,
    PoisonMessage,
    RejectedMessage,
    RetriesExhausted,
    TemporaryFailure,
    UnknownMessage,
)
from gateway.journal import ClaimResult, Journal
from gateway.offload import offload
from gateway.receipting import ReceiptIssuer
from gateway.settings import AmqpSettings
from gateway.submission import settle_links

log = structlog.get_logger("gateway.delivery")

ATTEMPT_HEADER = "x-asw-attempt"


class DeliveryWorker:
    """Delivers what waits in each receiver's queue through that receiver's adapter."""

    def __init__(
        self,
        broker: Broker,
        topology: Topology,
        adapters: Mapping[str, Adapter],
        settings: AmqpSettings,
        *,
        journal: Journal,
        clock: Callable[[], datetime],
        lease_seconds: float,
        trust: Callable[[], TrustStore] | None = None,
        receipts: ReceiptIssuer | None = None,
        limits: ParseLimits | None = None,
        offload_bytes: int = 64 * 1024,
    ) -> None:
        self._trust = trust
        self._receipts = receipts
        self._poison_after = settings.poison_after
        self._limits = limits or ParseLimits()
        self._offload_bytes = offload_bytes
        self._broker = broker
        self._topology = topology
        self._adapters = adapters
        self._journal = journal
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._schedule = RetrySchedule(settings.retry_schedule_seconds)

    def register(self) -> None:
        """Subscribe to the delivery queue of every party that has an adapter."""
        for country in sorted(self._adapters):
            queue = self._topology.delivery_queue(country)
            self._broker.consume(queue, self._make_handler(country))

    def _make_handler(self, country: str) -> MessageHandler:
        adapter = self._adapters[country]

        async def handle(message: AbstractIncomingMessage) -> None:
            await self._handle(country, adapter, message)

        return handle

    async def _handle(
        self, country: str, adapter: Adapter, message: AbstractIncomingMessage
    ) -> None:
        headers = message.headers or {}
        handover = Handover(
            message_id=message.message_id or "",
            sender=str(headers.get("x-asw-sender", "")),
            receiver=country,
            document_type=str(headers.get("x-asw-document-type", "")),
            payload=message.body,
        )
        attempt = _int_header(headers, ATTEMPT_HEADER, default=1)
        # Quorum queues count deliveries that ended without a settle: the worker died or
        # crashed on this message. Park it ourselves, with a reason, before it can do so again.
        crashes = _int_header(headers, "x-delivery-count", default=0)
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            message_id=handover.message_id,
            correlation_id=message.correlation_id,
            sender=handover.sender,
            recipient=country,
            doc_type=handover.document_type,
            attempt=attempt,
        ):
            if crashes >= self._poison_after:
                poison = PoisonMessage(
                    f"Delivery of this message was interrupted {crashes} times (the worker "
                    "stopped or failed while handling it); it is parked so it cannot block "
                    "the messages behind it."
                )
                await self._dead_letter(message, poison, attempt=attempt, last_error=poison)
                return
            try:
                # Claimed only for the very bytes whose signature ingest verified: their SHA-256
                # must be the journal's (anything else was changed in transit).
                claim = await self._journal.claim_delivery(
                    handover.message_id,
                    at=self._clock(),
                    lease=self._lease,
                    digest=hashlib.sha256(handover.payload).hexdigest(),
                )
                if claim is ClaimResult.UNKNOWN:
                    raise UnknownMessage(
                        f"Message {handover.message_id} was never recorded as accepted."
                    )
                if claim is ClaimResult.OTHER_BYTES:
                    raise DigestMismatch(
                        "The document handed to delivery differs from the one the gateway accepted."
                    )
                if claim is ClaimResult.BUSY:
                    # Another worker holds a live claim: come back later, and leave its
                    # journal state alone.
                    busy = PeerUnavailable("Another worker is delivering this message right now.")
                    await self._retry_or_give_up(message, attempt, busy, note=False)
                    return
                if not claim.granted:
                    if claim is ClaimResult.DELIVERED:
                        await self._receipt_again(handover)
                    await _settle(message.ack())
                    log.info("message_redelivery_ignored", outcome="ignored", claim=claim.value)
                    return
                await self._check_signer_again(handover.payload)
                maybe_there = message.redelivered or attempt > 1
                if maybe_there and await _already_received(adapter, handover.message_id):
                    log.info("message_already_at_receiver", outcome="not-handed-over-again")
                else:
                    await adapter.deliver(handover)
                # A pull inbox only stores the document; it counts as delivered (and the
                # receipt goes) when the NSW acknowledges its pickup.
                if not adapter.confirms_on_pickup:
                    await self._delivered(handover)
            except TemporaryFailure as exc:
                await self._retry_or_give_up(message, attempt, exc)
                return
            except GatewayError as exc:
                await self._dead_letter(message, exc, attempt=attempt, last_error=exc)
                return
            await _settle(message.ack())
            log.info(
                "message_delivered",
                outcome="delivered",
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            metrics.delivered(country, message)

    async def _delivered(self, handover: Handover) -> None:
        """Record the hand-over, then the receipt (or the links made while it was under way)."""
        delivered_at = self._clock()
        await self._journal.mark_delivered(handover.message_id, at=delivered_at)
        if self._receipts is not None:
            await self._receipts.issue(handover, delivered_at=delivered_at)
        elif handover.document_type != DocumentType.DELIVERY_RECEIPT.value:
            # A receipt or answer linked while this delivery was under way moves the message
            # on only now (gateway.core.states).
            await settle_links(self._journal, handover.message_id, at=delivered_at)

    async def _receipt_again(self, handover: Handover) -> None:
        """After a crash between delivery and ack the receipt may be missing: issue it again."""
        if self._receipts is None or not self._receipts.issues_for(handover):
            return
        view = await self._journal.get(handover.message_id)
        delivered = (
            [c.at for c in view.timeline if c.state is MessageState.DELIVERED] if view else []
        )
        await self._receipts.issue(
            handover, delivered_at=delivered[0] if delivered else self._clock()
        )

    async def _check_signer_again(self, payload: bytes) -> None:
        """Check the signer once more before the receiver sees the document.

        The claim already tied these bytes to the journal's digest of the document whose
        signature ingest verified. What can have changed since is trust: the signer is checked
        against today's (revocation, validity, usage, sender country), which is cached per
        certificate chain and CRL version.
        """
        if self._trust is None:
            return
        trust, now = self._trust(), self._clock()

        def check() -> None:
            root = parse(payload, self._limits)
            leaf, intermediates = signer_chain(root)
            sender = read_envelope(root).sender.country
            trust.check_signer(leaf, intermediates, sender=sender, now=now)

        await offload(len(payload), self._offload_bytes, check)

    async def _retry_or_give_up(
        self,
        message: AbstractIncomingMessage,
        attempt: int,
        error: TemporaryFailure,
        *,
        note: bool = True,
    ) -> None:
        decision = self._schedule.after_failure(attempt)
        if isinstance(decision, GiveUp) and not note:
            # A busy copy: another worker holds a live claim. Never park it over that claim;
            # keep coming back at the last step until the claimant settles the message.
            decision = self._schedule.after_failure(len(self._schedule.delays_seconds) or 1)
        if isinstance(decision, GiveUp):
            exhausted = RetriesExhausted(
                f"Delivery failed {attempt} times; the last error was {error.code}: {error.detail}"
            )
            await self._dead_letter(message, exhausted, attempt=attempt, last_error=error)
            return
        if note:
            await self._note(
                message, MessageState.RETRYING, error=error, attempt=attempt, ignore_failure=True
            )
        delay_ms = round(decision.delay_seconds * 1000)
        headers = dict(message.headers or {})
        headers.update(
            {
                ATTEMPT_HEADER: decision.attempt,
                RETRY_DELAY_HEADER: delay_ms,
                "x-asw-last-error": error.code,
                "x-asw-last-detail": error.detail[:500],
            }
        )
        if not await self._republish(message, self._topology.retry_exchange, headers):
            return
        log.warning(
            "message_delivery_retry",
            outcome="retrying",
            error=error.code,
            detail=error.detail,
            retry_in_seconds=decision.delay_seconds,
        )
        metrics.retried(message, error.code)

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        error: GatewayError,
        *,
        attempt: int,
        last_error: GatewayError,
    ) -> None:
        """Park the message with its reason, confirmed, then ack the original."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-asw-reason": error.code,
                "x-asw-detail": error.detail[:500],
                "x-asw-original-routing-key": message.routing_key or "",
                ATTEMPT_HEADER: attempt,
                "x-asw-last-error": last_error.code,
            }
        )
        headers.pop(RETRY_DELAY_HEADER, None)
        await self._note(message, MessageState.DEAD, error=error, attempt=attempt)
        if await self._republish(message, self._topology.dead_exchange, headers):
            log.error(
                "message_dead_lettered", outcome="dead", error=error.code, detail=error.detail
            )
            metrics.dead_lettered(message, error.code)

    async def _note(
        self,
        message: AbstractIncomingMessage,
        state: MessageState,
        *,
        error: GatewayError,
        attempt: int,
        ignore_failure: bool = False,
    ) -> None:
        """Record a state change; the broker copy is the source of truth if this fails."""
        try:
            await self._journal.transition(
                message.message_id or "",
                state,
                at=self._clock(),
                error_code=error.code,
                detail=error.detail[:500],
                attempt=attempt,
            )
        except GatewayError as exc:
            log.warning("journal_note_failed", state=state.value, error=exc.code)
            if not ignore_failure and not isinstance(exc, RejectedMessage):
                raise

    async def _republish(
        self, message: AbstractIncomingMessage, exchange: str, headers: Mapping[str, Any]
    ) -> bool:
        """Publish a copy (confirmed) and ack the original; on failure leave it queued."""
        try:
            await self._broker.publish(
                Outgoing(
                    exchange=exchange,
                    routing_key=message.routing_key or "unknown",
                    body=message.body,
                    message_id=message.message_id or "",
                    correlation_id=message.correlation_id,
                    headers=amqp_headers(headers),
                )
            )
        except GatewayError as exc:
            log.warning("message_requeued", error=exc.code, detail=exc.detail)
            await _settle(message.nack(requeue=True))
            return False
        await _settle(message.ack())
        return True


async def _already_received(adapter: Adapter, message_id: str) -> bool:
    """Whether the partner says it has the message (only adapters that can ask)."""
    if not isinstance(adapter, ReceiverQuery):
        return False
    return await adapter.has_received(message_id) is True


def _int_header(headers: Mapping[str, Any], name: str, *, default: int) -> int:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


async def _settle(settlement: Awaitable[None]) -> None:
    """Await an ack/nack; a dropped connection means RabbitMQ will redeliver anyway."""
    try:
        await settlement
    except CONNECTION_EXCEPTIONS as exc:
        log.warning("message_settle_failed", error=type(exc).__name__)
