"""Submission: the one path every inbound document takes, whatever channel it came by.

HTTP, the drop-folder intake and (later) other channels all call ``Submissions.submit``: run the
pure ingest checks (in a thread when the document is large), publish with a confirm, and log one
line for the outcome. A document is accepted only once RabbitMQ has confirmed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.broker import Broker, Outgoing, amqp_headers
from gateway.core.pipeline import Accepted, Ingest
from gateway.errors import GatewayError, RejectedMessage

log = structlog.get_logger("gateway.submission")


class Submissions:
    """Checks and publishes inbound documents."""

    def __init__(
        self,
        ingest: Ingest,
        broker: Broker,
        clock: Callable[[], datetime],
        *,
        offload_bytes: int,
    ) -> None:
        self.ingest = ingest
        self._broker = broker
        self._clock = clock
        self._offload_bytes = offload_bytes

    async def submit(
        self,
        data: bytes,
        *,
        channel: str,
        caller: str | None = None,
        correlation_id: str | None = None,
    ) -> Accepted:
        """Accept ``data`` durably or raise the reason; logs the outcome either way."""
        started = time.perf_counter()
        now = self._clock()
        try:
            if len(data) <= self._offload_bytes:
                accepted = self.ingest.accept(data, now=now, caller=caller)
            else:
                accepted = await asyncio.to_thread(
                    self.ingest.accept, data, now=now, caller=caller
                )
            envelope = accepted.envelope
            structlog.contextvars.bind_contextvars(
                message_id=envelope.message_id,
                sender=envelope.sender.country,
                recipient=envelope.receiver.country,
                doc_type=envelope.document_type.value,
            )
            await self._broker.publish(
                Outgoing(
                    exchange=accepted.route.exchange,
                    routing_key=accepted.route.routing_key,
                    body=accepted.payload,
                    message_id=envelope.message_id,
                    correlation_id=correlation_id,
                    headers=amqp_headers(
                        {
                            "x-asw-sender": envelope.sender.country,
                            "x-asw-receiver": envelope.receiver.country,
                            "x-asw-document-type": envelope.document_type.value,
                            "x-asw-function": envelope.function.value,
                            "x-asw-test": envelope.test,
                            "x-asw-digest": accepted.digest,
                            "x-asw-channel": channel,
                        }
                    ),
                )
            )
        except GatewayError as exc:
            rejected = isinstance(exc, RejectedMessage)
            log.info(
                "message_rejected" if rejected else "message_not_accepted",
                outcome="rejected" if rejected else "unavailable",
                channel=channel,
                error=exc.code,
                status=exc.http_status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            raise
        log.info(
            "message_accepted",
            outcome="accepted",
            channel=channel,
            route=accepted.route.routing_key,
            size=len(data),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return accepted
