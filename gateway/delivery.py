"""The delivery side: consume a receiver's queue and hand each document to its adapter.

Before handing a document over, the worker claims it in the journal: only one claimant may
hand over a message, and a redelivery of a message already delivered (after a crash between
hand-over and ack) is acked without reaching the receiver again. A message is acked only after
the adapter returned, i.e. after the receiver durably has the document. A temporary failure
sends the message to the next step of the retry schedule; when the schedule is used up, or on
a permanent failure, the message is dead-lettered with its reason code, original route,
attempt count and last error. Whatever is published on the way (retry or dead letter) is
confirmed by RabbitMQ before the original is acked.

Never a second hand-over because the journal blinked (issue 14): once the adapter returned,
recording DELIVERED is retried for up to ``RECORD_WITHIN_SECONDS`` with backoff; if the journal
still cannot take it, the copy goes to a retry step marked ``x-asw-handed-over`` (without
noting RETRYING, which would free the claim), and when it comes back it is only recorded. The
worker also remembers the ids it handed over unrecorded, for a copy that comes back unmarked
(the marked copy could not be published). Every consumer callback settles its message: an
error nobody expected is logged (``message_handler_failed``) and the message is requeued
after a pause, never left unacked holding its prefetch slot.

What to do with a message (claim, hand over, ack, retry, dead-letter) is decided in the core
(``gateway.core.dispatch``); this shell performs it against the journal, the adapter and
RabbitMQ, and logs. The message's headers are read and written through
``gateway.core.headers``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from gateway import metrics
from gateway.broker import Broker, MessageHandler, Outgoing
from gateway.core.dispatch import (
    Ack,
    Arrival,
    Claim,
    DeadLetter,
    Decision,
    Deliver,
    ParkRecorded,
    Record,
    Retry,
    decide,
)
from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.handover import Adapter, Handover, ReceiverQuery
from gateway.core.headers import MessageHeaders
from gateway.core.parsing import ParseLimits, parse
from gateway.core.retry import RetrySchedule
from gateway.core.signatures import signer_chain
from gateway.core.states import MessageState
from gateway.core.topology import Topology
from gateway.core.trust import TrustStore
from gateway.errors import (
    GatewayError,
    RejectedMessage,
    TemporaryFailure,
)
from gateway.journal import ClaimResult, Journal
from gateway.offload import offload
from gateway.receipt_issuer import ReceiptIssuer
from gateway.settings import AmqpSettings
from gateway.submission import settle_links

log = structlog.get_logger("gateway.delivery")

RECORD_WITHIN_SECONDS = 10.0
"""How long a worker keeps trying to record a hand-over (DELIVERED, the receipt) before it
passes the copy, marked as handed over, to a retry step."""
RECORD_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
"""Pauses between those tries (the last one repeats)."""
REQUEUE_PAUSE_SECONDS = 1.0
"""Pause before requeueing a message whose handling failed unexpectedly (no hot loop)."""
REMEMBERED_HAND_OVERS = 10_000
"""Ids handed over but not recorded that a worker remembers (oldest forgotten first)."""


class HandedOver(Exception):
    """A failure after the receiver got the document: only recording it is left to do."""

    def __init__(self, error: GatewayError, at: datetime) -> None:
        super().__init__(error.detail)
        self.error = error
        self.at = at


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
        self._unrecorded: OrderedDict[str, datetime] = OrderedDict()
        """Handed over, DELIVERED not recorded yet: message id -> when the receiver got it."""

    def register(self) -> None:
        """Subscribe to the delivery queue of every party that has an adapter."""
        for country in sorted(self._adapters):
            queue = self._topology.delivery_queue(country)
            self._broker.consume(queue, self._make_handler(country))

    def _make_handler(self, country: str) -> MessageHandler:
        adapter = self._adapters[country]

        async def handle(message: AbstractIncomingMessage) -> None:
            try:
                await self._handle(country, adapter, message)
            except Exception as exc:  # settled below: never escapes unsettled
                log.error(
                    "message_handler_failed",
                    message_id=message.message_id,
                    recipient=country,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    exc_info=True,
                )
                if not message.processed:
                    await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
                    await _settle(message.nack(requeue=True))

        return handle

    async def _handle(
        self, country: str, adapter: Adapter, message: AbstractIncomingMessage
    ) -> None:
        headers = MessageHeaders.from_amqp(message.headers)
        # A re-transmission (OCP Rule 29(3)) travels under the request's message id, which is
        # the journal row it delivers; the receiver gets the e-Form D under its own id.
        resent = headers.retransmission_of
        handover = Handover(
            message_id=resent or message.message_id or "",
            sender=headers.sender or "",
            receiver=country,
            document_type=headers.document_type or "",
            payload=message.body,
            retransmission_request=message.message_id if resent else None,
        )
        handed_over_at = self._handed_over_at(handover.journal_id, headers)
        arrival = Arrival(
            message_id=handover.journal_id,
            attempt=1 if headers.attempt is None else headers.attempt,
            # Quorum queues count deliveries that ended without a settle: the worker died or
            # crashed on this message.
            crashes=headers.delivery_count or 0,
            redelivered=bool(message.redelivered),
            handed_over=handed_over_at is not None,
            # Only a postponed parking carries a dead-letter reason back to a delivery queue
            # (a replay publishes fresh headers).
            parking=headers.reason is not None,
        )
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            message_id=handover.message_id,
            retransmission_request=handover.retransmission_request,
            correlation_id=message.correlation_id,
            sender=handover.sender,
            recipient=country,
            doc_type=handover.document_type,
            attempt=arrival.attempt,
        ):
            decision = self._decide(arrival)
            if isinstance(decision, Record) and handed_over_at is not None:
                decision = await self._record(arrival, handover, handed_over_at)
            if isinstance(decision, Claim):
                decision = await self._claimed(
                    arrival,
                    adapter,
                    handover,
                    message,
                    relayed=headers.retransmission_relayed_by is not None,
                )
            if isinstance(decision, Retry):
                await self._retry(message, headers, decision)
            elif isinstance(decision, DeadLetter):
                await self._dead_letter(message, headers, decision)
            elif isinstance(decision, ParkRecorded):
                await self._park(message, headers)
            elif isinstance(decision, Deliver):
                await _settle(message.ack())
                log.info(
                    "message_delivered",
                    outcome="delivered",
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
                metrics.delivered(country, message)

    def _handed_over_at(self, message_id: str, headers: MessageHeaders) -> datetime | None:
        """When the receiver got this message, if a hand-over is known and not recorded."""
        if headers.handed_over is not None:
            try:
                return datetime.fromisoformat(headers.handed_over)
            except ValueError:
                log.warning("handed_over_header_invalid", value=headers.handed_over[:40])
        return self._unrecorded.get(message_id)

    def _remember_unrecorded(self, message_id: str, at: datetime) -> None:
        self._unrecorded[message_id] = at
        self._unrecorded.move_to_end(message_id)
        while len(self._unrecorded) > REMEMBERED_HAND_OVERS:
            self._unrecorded.popitem(last=False)

    async def _record(
        self, arrival: Arrival, handover: Handover, handed_over_at: datetime
    ) -> Decision:
        """Record a hand-over made before (DELIVERED, receipt): never hand it over again."""
        try:
            await self._delivered_patiently(handover, handed_over_at)
        except HandedOver as exc:
            return self._decide(arrival, failure=exc.error)
        except GatewayError as exc:
            return self._decide(arrival, failure=exc)
        log.info("message_hand_over_recorded", outcome="recorded-late")
        return Deliver(ask_receiver_first=False)

    def _decide(
        self,
        arrival: Arrival,
        *,
        claim: ClaimResult | None = None,
        failure: GatewayError | None = None,
    ) -> Decision:
        return decide(
            arrival,
            poison_after=self._poison_after,
            schedule=self._schedule,
            claim=claim,
            failure=failure,
        )

    async def _claimed(
        self,
        arrival: Arrival,
        adapter: Adapter,
        handover: Handover,
        message: AbstractIncomingMessage,
        *,
        relayed: bool = False,
    ) -> Decision:
        """Claim the message and perform what the claim decides, up to the hand-over.

        Returns what is left to do: ack a delivered message (``Deliver``), retry or
        dead-letter it, or nothing (``Ack``: already acked). An error raised on the way is
        decided on in its turn. ``relayed``: a re-transmission the issuing country's gateway
        forwarded; the request's row is that gateway's, so nothing is claimed or recorded here.
        """
        try:
            # Claimed only for the very bytes whose signature ingest verified: their SHA-256
            # must be the journal's (anything else was changed in transit).
            digest = hashlib.sha256(handover.payload).hexdigest()
            if handover.retransmission_request is None:
                claim = await self._journal.claim_delivery(
                    handover.message_id, at=self._clock(), lease=self._lease, digest=digest
                )
            else:
                claim = await self._claim_retransmission(handover, digest, relayed=relayed)
            decision = self._decide(arrival, claim=claim)
            if isinstance(decision, Ack):
                if decision.receipt_again:
                    await self._receipt_again(handover)
                await _settle(message.ack())
                log.info(
                    "message_redelivery_ignored", outcome="ignored", claim=decision.reason.value
                )
            elif isinstance(decision, Deliver):
                await self._hand_over(adapter, handover, decision, record=not relayed)
        except HandedOver as exc:
            return self._unrecorded_hand_over(arrival, handover.journal_id, exc)
        except GatewayError as exc:
            return self._decide(arrival, failure=exc)
        return decision

    async def _claim_retransmission(
        self, handover: Handover, digest: str, *, relayed: bool
    ) -> ClaimResult:
        """Claim the request's row for a re-transmission, once the bytes are the e-Form D's.

        The request's own digest is the request's; the e-Form D's bytes must match the
        journal's digest of the e-Form D (``OTHER_BYTES`` otherwise, also when it was purged
        meanwhile and cannot be compared). A relayed copy has no row of its own here: granted
        on the bytes alone (handed over again after a crash, under the same marks, which the
        receiver recognises).
        """
        original = await self._journal.get(handover.message_id)
        if original is None or original.summary.record.digest != digest:
            return ClaimResult.OTHER_BYTES
        if relayed:
            return ClaimResult.GRANTED
        return await self._journal.claim_delivery(
            handover.journal_id, at=self._clock(), lease=self._lease
        )

    def _unrecorded_hand_over(
        self, arrival: Arrival, message_id: str, handed: HandedOver
    ) -> Decision:
        """The receiver has it and the journal could not record it: from now on this copy is
        only to be recorded (marked, remembered), never handed over again."""
        self._remember_unrecorded(message_id, handed.at)
        marked = Arrival(
            message_id=arrival.message_id,
            attempt=arrival.attempt,
            crashes=arrival.crashes,
            redelivered=arrival.redelivered,
            handed_over=True,
        )
        decision = self._decide(marked, failure=handed.error)
        log.error(
            "message_handed_over_unrecorded",
            outcome="handed-over-unrecorded",
            error=handed.error.code,
            detail=handed.error.detail,
        )
        return decision

    async def _hand_over(
        self, adapter: Adapter, handover: Handover, deliver: Deliver, *, record: bool = True
    ) -> None:
        """Check the signer again and hand the document over (unless the receiver has it);
        then record it, unless ``record`` is False (a relayed re-transmission)."""
        await self._check_signer_again(handover.payload)
        # The receiver of a re-transmission has had the e-Form D before: never ask it.
        if (
            deliver.ask_receiver_first
            and handover.retransmission_request is None
            and await _already_received(adapter, handover.message_id)
        ):
            log.info("message_already_at_receiver", outcome="not-handed-over-again")
        else:
            await adapter.deliver(handover)
        # A pull inbox only stores the document; it counts as delivered (and the receipt
        # goes) when the NSW acknowledges its pickup.
        if record and not adapter.confirms_on_pickup:
            await self._delivered_patiently(handover, self._clock())

    async def _delivered_patiently(self, handover: Handover, delivered_at: datetime) -> None:
        """Record a hand-over, trying again with backoff while the journal fails for now.

        Raises ``HandedOver`` when it still fails after ``RECORD_WITHIN_SECONDS``: the caller
        must then never hand the document over again. Recording twice is harmless (DELIVERED
        stays DELIVERED; the receipt is issued once).
        """
        deadline = time.monotonic() + RECORD_WITHIN_SECONDS
        tries = 0
        while True:
            try:
                await self._delivered(handover, delivered_at)
            except TemporaryFailure as exc:
                pause = RECORD_BACKOFF_SECONDS[min(tries, len(RECORD_BACKOFF_SECONDS) - 1)]
                tries += 1
                if time.monotonic() + pause >= deadline:
                    raise HandedOver(exc, delivered_at) from exc
                log.warning("journal_record_delivered_retry", error=exc.code, tries=tries)
                await asyncio.sleep(pause)
            else:
                if self._unrecorded.pop(handover.journal_id, None) is not None or tries:
                    log.info("journal_record_delivered_healed", tries=tries)
                return

    async def _delivered(self, handover: Handover, delivered_at: datetime) -> None:
        """Record the hand-over, then the receipt (or the links made while it was under way)."""
        await self._journal.mark_delivered(handover.journal_id, at=delivered_at)
        if handover.retransmission_request is not None:
            # The request is served; the e-Form D was receipted on its first delivery.
            return
        if self._receipts is not None:
            await self._receipts.issue(handover, delivered_at=delivered_at)
        elif handover.document_type != DocumentType.DELIVERY_RECEIPT.value:
            # A receipt or answer linked while this delivery was under way moves the message
            # on only now (gateway.core.states).
            await settle_links(self._journal, handover.message_id, at=delivered_at)

    async def _receipt_again(self, handover: Handover) -> None:
        """After a crash between delivery and ack the receipt may be missing: issue it again."""
        if (
            self._receipts is None
            or handover.retransmission_request is not None
            or not self._receipts.issues_for(handover)
        ):
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

    async def _retry(
        self, message: AbstractIncomingMessage, headers: MessageHeaders, retry: Retry
    ) -> None:
        """Note RETRYING (unless busy elsewhere, or handed over), publish to the retry step,
        ack the original."""
        error = retry.error
        handed_over = None
        if retry.handed_over:
            at = self._unrecorded.get(message.message_id or "")
            handed_over = headers.handed_over or (at or self._clock()).isoformat()
        if retry.note:
            await self._note(
                message,
                MessageState.RETRYING,
                error=error,
                attempt=retry.failed_attempt,
                ignore_failure=True,
            )
        retrying = headers.for_retry(
            attempt=retry.next_attempt,
            delay_ms=round(retry.delay_seconds * 1000),
            error_code=error.code,
            error_detail=error.detail,
            handed_over=handed_over,
        )
        if not await self._republish(message, self._topology.retry_exchange, retrying):
            return
        log.warning(
            "message_delivery_retry",
            outcome="retrying",
            error=error.code,
            detail=error.detail,
            retry_in_seconds=retry.delay_seconds,
        )
        metrics.retried(message, error.code)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, headers: MessageHeaders, dead: DeadLetter
    ) -> None:
        """Park the message with its reason, confirmed, then ack the original."""
        error = dead.reason
        parked = headers.for_dead_letter(
            reason=error.code,
            detail=error.detail,
            routing_key=message.routing_key or "",
            attempt=dead.attempt,
            last_error=dead.last_error.code,
        )
        try:
            await self._note(message, MessageState.DEAD, error=error, attempt=dead.attempt)
        except TemporaryFailure as exc:
            # Parked only once the journal says DEAD too (a replay needs it): come back later,
            # carrying the reason, in case the DEAD write lands after all (``ParkRecorded``).
            await self._postpone(message, parked, exc)
            return
        await self._park(message, parked)

    async def _park(self, message: AbstractIncomingMessage, parked: MessageHeaders) -> None:
        """Publish the copy to the dead letters with the reason ``parked`` carries (the journal
        says DEAD), confirmed, then ack the original."""
        reason = parked.reason or ""
        parked = dataclasses.replace(parked, retry_delay_ms=None)
        if await self._republish(message, self._topology.dead_exchange, parked):
            log.error("message_dead_lettered", outcome="dead", error=reason, detail=parked.detail)
            metrics.dead_lettered(message, reason)

    async def _postpone(
        self, message: AbstractIncomingMessage, headers: MessageHeaders, error: GatewayError
    ) -> None:
        """Send the copy round the shortest retry step unchanged (same attempt): decided anew
        when it is back, once the journal can record what happens to it."""
        delays = self._schedule.delays_seconds
        later = headers.for_retry(
            attempt=headers.attempt or 1,
            delay_ms=round(min(delays) * 1000) if delays else 1000,
            error_code=error.code,
            error_detail=error.detail,
        )
        if await self._republish(message, self._topology.retry_exchange, later):
            log.warning("message_parking_postponed", outcome="retrying", error=error.code)

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
        self, message: AbstractIncomingMessage, exchange: str, headers: MessageHeaders
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
                    headers=headers.to_amqp(),
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


async def _settle(settlement: Awaitable[None]) -> None:
    """Await an ack/nack; a dropped connection means RabbitMQ will redeliver anyway."""
    try:
        await settlement
    except CONNECTION_EXCEPTIONS as exc:
        log.warning("message_settle_failed", error=type(exc).__name__)
