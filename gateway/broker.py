"""The RabbitMQ shell: topology, confirmed publishing, consumers, reconnection.

A supervisor task keeps one connection: it connects, declares the topology (idempotently),
starts the registered consumers and waits for the connection to drop, then starts over after a
pause. While disconnected, ``publish`` fails at once with ``BrokerUnavailable`` so that the HTTP
layer answers 503 instead of hanging, and nothing is ever reported as accepted unless RabbitMQ
confirmed it. Foreign exceptions become ``GatewayError``s here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError

from gateway import metrics
from gateway.core.headers import RETRY_DELAY, HeaderValue
from gateway.core.topology import Topology
from gateway.errors import BrokerUnavailable
from gateway.settings import AmqpSettings

log = structlog.get_logger("gateway.broker")

MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One message to publish, with the AMQP properties the gateway sets."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    correlation_id: str | None
    headers: Mapping[str, HeaderValue]


class Broker:
    """One supervised connection to RabbitMQ for publishing and consuming."""

    def __init__(self, settings: AmqpSettings, topology: Topology, receivers: frozenset[str]):
        self.retry_delays_ms = tuple(
            sorted({round(d * 1000) for d in settings.retry_schedule_seconds})
        )
        self._settings = settings
        self._topology = topology
        self._receivers = receivers
        self._consumers: dict[str, MessageHandler] = {}
        self._consuming: list[tuple[AbstractQueue, str]] = []
        self._in_flight = 0
        self._handling: set[asyncio.Future[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._connection: AbstractConnection | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        """True while a connection with a declared topology is up."""
        return self._connected.is_set()

    def consume(self, queue: str, handler: MessageHandler) -> None:
        """Register ``handler`` for ``queue``; it is (re)started on every connection."""
        self._consumers[queue] = handler

    async def start(self) -> None:
        """Start the supervisor; returns at once, connected or not."""
        self._supervisor = asyncio.create_task(self._supervise(), name="broker-supervisor")

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker; say whether it is connected."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop consuming, let in-flight deliveries finish, then close and stop reconnecting.

        Deliveries get ``drain_seconds`` (the gateway passes at least its largest adapter
        timeout) to finish their hand-over, record it and ack. One still running then is
        cancelled and awaited, so that nothing runs on after ``stop`` returns (the journal is
        closed next); its message is unacked and goes back to its queue, where the claim's
        lease and the receiver's status query keep a second hand-over rare.
        """
        self._stopping = True
        for queue, tag in self._consuming:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await queue.cancel(tag)
        self._consuming = []
        if self._in_flight:
            log.info("broker_draining", in_flight=self._in_flight, drain_seconds=drain_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_seconds)
        if self._in_flight:
            log.warning("broker_stopped_with_deliveries_in_flight", in_flight=self._in_flight)
            for task in list(self._handling):
                task.cancel()
            await asyncio.gather(*self._handling, return_exceptions=True)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._close()

    async def _close(self) -> None:
        self._connected.clear()
        self._consuming = []
        self._exchanges = {}
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()

    async def _supervise(self) -> None:
        while not self._stopping:
            lost = asyncio.Event()
            try:
                await self._connect(lost)
                log.info("broker_connected", url=_redact(self._settings.url))
                await lost.wait()
                log.warning("broker_connection_lost")
            except CONNECTION_EXCEPTIONS as exc:
                log.warning("broker_unreachable", error=type(exc).__name__, detail=str(exc)[:200])
            finally:
                await self._close()
            await asyncio.sleep(self._settings.reconnect_seconds)

    async def _connect(self, lost: asyncio.Event) -> None:
        connection = await aio_pika.connect(self._settings.url, timeout=5)
        self._connection = connection
        connection.close_callbacks.add(lambda *_: lost.set())
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        channel.close_callbacks.add(lambda *_: lost.set())
        await self._declare(channel)
        # Publishing works from here on. Set before the consumers start: the first deliveries
        # may publish at once (a retry step, a dead letter, a receipt), and a refusal then would
        # requeue them, which a quorum queue counts as a crash (towards poison_after).
        self._connected.set()
        for queue_name, handler in self._consumers.items():
            consumer_channel = await connection.channel()
            consumer_channel.close_callbacks.add(lambda *_: lost.set())
            await consumer_channel.set_qos(prefetch_count=self._settings.prefetch)
            queue = await consumer_channel.get_queue(queue_name, ensure=False)
            tag = await queue.consume(self._tracked(handler))
            self._consuming.append((queue, tag))

    def _tracked(self, handler: MessageHandler) -> MessageHandler:
        """Wrap ``handler`` so that ``stop`` can wait for deliveries in progress.

        The handler runs in a task of its own, shielded: when the connection drops, aiormq
        cancels its consumer tasks, and a hand-over cut short between the NSW's answer and
        the journal's DELIVERED would be handed over again once the claim's lease runs out.
        Shielded, it finishes; its ack fails, and the redelivery is recognised as delivered.
        """

        def finished(task: asyncio.Future[None]) -> None:
            self._handling.discard(task)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

        async def tracked(message: AbstractIncomingMessage) -> None:
            self._in_flight += 1
            self._idle.clear()
            task = asyncio.ensure_future(handler(message))
            self._handling.add(task)
            task.add_done_callback(finished)
            await asyncio.shield(task)

        return tracked

    async def _declare(self, channel: AbstractChannel) -> None:
        """Declare every exchange and queue; safe to repeat on every connection."""
        topo = self._topology
        route = await channel.declare_exchange(
            topo.route_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await channel.declare_exchange(
            topo.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead_queue = await channel.declare_queue(
            topo.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(dead, routing_key="#")
        retry = await channel.declare_exchange(
            topo.retry_exchange, aio_pika.ExchangeType.HEADERS, durable=True
        )
        for delay_ms in self.retry_delays_ms:
            retry_queue = await channel.declare_queue(
                topo.retry_queue(delay_ms),
                durable=True,
                arguments={
                    "x-message-ttl": delay_ms,
                    "x-dead-letter-exchange": topo.route_exchange,
                },
            )
            await retry_queue.bind(retry, arguments={"x-match": "all", RETRY_DELAY: delay_ms})
        for country in sorted(self._receivers):
            queue = await channel.declare_queue(
                topo.delivery_queue(country),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": topo.dead_exchange,
                    "x-delivery-limit": self._settings.delivery_limit,
                },
            )
            await queue.bind(route, routing_key=topo.binding_key(country))
        self._exchanges = {
            topo.route_exchange: route,
            topo.dead_exchange: dead,
            topo.retry_exchange: retry,
        }

    async def publish(self, outgoing: Outgoing) -> None:
        """Publish persistently and wait for RabbitMQ's confirm, or raise BrokerUnavailable.

        Many publishes may wait on their confirms at once (one per HTTP request), so confirms
        are pipelined on the one channel rather than serialised.
        """
        exchange = self._exchanges.get(outgoing.exchange) if self.connected else None
        if exchange is None:
            raise BrokerUnavailable(
                "The message broker is not reachable right now; the message is not accepted "
                "yet. Send it again shortly with the same message id; it will not be "
                "delivered twice."
            )
        message = aio_pika.Message(
            outgoing.body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=outgoing.message_id,
            correlation_id=outgoing.correlation_id,
            content_type="application/xml",
            headers={metrics.PUBLISHED_AT_HEADER: metrics.published_at(), **outgoing.headers},
        )
        try:
            await exchange.publish(
                message,
                outgoing.routing_key,
                mandatory=True,
                timeout=self._settings.confirm_timeout_seconds,
            )
        except PublishError as exc:
            raise BrokerUnavailable(
                f"The broker could not route the message ({outgoing.routing_key}); "
                "it was not accepted."
            ) from exc
        except DeliveryError as exc:
            raise BrokerUnavailable("The broker refused to store the message.") from exc
        except TimeoutError as exc:
            raise _outcome_unknown(
                "The broker did not confirm the message in time.", outgoing.message_id
            ) from exc
        except CONNECTION_EXCEPTIONS as exc:
            raise _outcome_unknown(
                "The connection to the message broker failed before it confirmed the message.",
                outgoing.message_id,
            ) from exc

    async def remove_parked(self, message_id: str, *, scan_limit: int = 10_000) -> bool:
        """Take the parked copy of ``message_id`` out of the dead-letter queue (after a replay).

        The parking lot is a queue, not a table: every message is looked at once, the match is
        acked and the others are returned (their order in the parking lot may change).
        """
        if self._connection is None or not self.connected:
            raise BrokerUnavailable("The message broker is not reachable right now.")
        found = False
        try:
            channel = await self._connection.channel()
            try:
                queue = await channel.get_queue(self._topology.dead_queue, ensure=False)
                held = []
                for _ in range(scan_limit):
                    parked = await queue.get(no_ack=False, fail=False)
                    if parked is None:
                        break
                    if not found and parked.message_id == message_id:
                        await parked.ack()
                        found = True
                        break
                    held.append(parked)
                for parked in held:
                    await parked.nack(requeue=True)
            finally:
                await channel.close()
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable("Could not reach the dead-letter queue.") from exc
        return found

    async def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each delivery queue and the dead letters (passive declares)."""
        if self._connection is None or not self.connected:
            raise BrokerUnavailable("The message broker is not reachable right now.")
        names = [self._topology.delivery_queue(c) for c in sorted(self._receivers)]
        names.extend(self._topology.retry_queue(d) for d in self.retry_delays_ms)
        names.append(self._topology.dead_queue)
        depths: dict[str, int] = {}
        try:
            channel = await self._connection.channel()
            try:
                for name in names:
                    queue = await channel.declare_queue(name, passive=True)
                    depths[name] = int(queue.declaration_result.message_count or 0)
            finally:
                await channel.close()
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable("Could not read the queue depths from the broker.") from exc
        return depths


def _outcome_unknown(what: str, message_id: str) -> BrokerUnavailable:
    """A 503 for a publish that went out but was never confirmed: the broker may have kept it.

    Such a message is not accepted (no 202), yet it may still be delivered. The answer says so
    (``may_be_delivered``) and where to look (``status``: ``GET /v1/messages/{id}``, whose
    state moves on from ACCEPTED once a worker takes it); sending it again with the same
    message id is safe, the delivery claim hands it over once.
    """
    status = f"/v1/messages/{message_id}"
    return BrokerUnavailable(
        f"{what} It was not accepted, but the broker may still deliver it: check GET {status}, "
        "or send it again with the same message id (it is never handed over twice).",
        extensions={"may_be_delivered": True, "status": status},
    )


def _redact(url: str) -> str:
    """Hide the password in an AMQP URL for logging."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
