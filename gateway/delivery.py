"""The delivery side: consume a receiver's queue and hand each document to its adapter.

A message is acked only after the adapter returned, i.e. after the receiver durably has the
document. A temporary failure puts the message back after a pause (the quorum queue's delivery
limit bounds how often); a permanent failure dead-letters it with its reason code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from gateway.broker import Broker, MessageHandler, Outgoing, amqp_headers
from gateway.core.handover import Adapter, Handover
from gateway.core.topology import Topology
from gateway.errors import GatewayError, TemporaryFailure
from gateway.settings import AmqpSettings

log = structlog.get_logger("gateway.delivery")


class DeliveryWorker:
    """Delivers what waits in each receiver's queue through that receiver's adapter."""

    def __init__(
        self,
        broker: Broker,
        topology: Topology,
        adapters: Mapping[str, Adapter],
        settings: AmqpSettings,
    ) -> None:
        self._broker = broker
        self._topology = topology
        self._adapters = adapters
        self._settings = settings

    def register(self) -> None:
        """Subscribe to the delivery queue of every party that has an adapter."""
        for country in sorted(self._adapters):
            self._broker.consume(
                self._topology.delivery_queue(country), self._make_handler(country)
            )

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
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            message_id=handover.message_id,
            correlation_id=message.correlation_id,
            sender=handover.sender,
            recipient=country,
            doc_type=handover.document_type,
        ):
            try:
                await adapter.deliver(handover)
            except TemporaryFailure as exc:
                log.warning(
                    "message_delivery_retry",
                    outcome="retrying",
                    error=exc.code,
                    detail=exc.detail,
                    redelivered=message.redelivered,
                )
                await asyncio.sleep(self._settings.transient_retry_seconds)
                await _settle(message.nack(requeue=True))
                return
            except GatewayError as exc:
                await self._dead_letter(message, exc)
                return
            await _settle(message.ack())
            log.info(
                "message_delivered",
                outcome="delivered",
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _dead_letter(self, message: AbstractIncomingMessage, error: GatewayError) -> None:
        """Park the message with its reason, confirmed, then ack the original."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-asw-reason": error.code,
                "x-asw-detail": error.detail[:500],
                "x-asw-original-routing-key": message.routing_key or "",
            }
        )
        try:
            await self._broker.publish(
                Outgoing(
                    exchange=self._topology.dead_exchange,
                    routing_key=message.routing_key or "unknown",
                    body=message.body,
                    message_id=message.message_id or "",
                    correlation_id=message.correlation_id,
                    headers=amqp_headers(headers),
                )
            )
        except GatewayError:
            await _settle(message.nack(requeue=True))
            raise
        await _settle(message.ack())
        log.error("message_dead_lettered", outcome="dead", error=error.code, detail=error.detail)


async def _settle(settlement: object) -> None:
    """Await an ack/nack; a dropped connection means RabbitMQ will redeliver anyway."""
    try:
        await settlement  # type: ignore[misc]
    except CONNECTION_EXCEPTIONS as exc:
        log.warning("message_settle_failed", error=type(exc).__name__)
