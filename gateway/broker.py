"""The RabbitMQ shell: topology, confirmed publishing, consumers, reconnection.

A supervisor task keeps one connection: it connects, declares the topology (idempotently),
starts the registered consumers and waits for the connection to drop, then starts over after a
pause. Given every node of a cluster (``amqp.urls``), it tries them in turn, starting after the
node it last lost, so a node that dies is replaced by another without anyone's help. While
disconnected, ``publish`` fails at once with ``BrokerUnavailable`` so that the HTTP layer answers
503 instead of hanging, and nothing is ever reported as accepted unless RabbitMQ confirmed it.

While RabbitMQ has blocked publishing (a memory or disk alarm), a publish would wait for the
whole confirm timeout. RabbitMQ tells a connection so (``connection.blocked``) only once that
connection publishes during the alarm, so a second, small connection publishes an empty probe
(to the default exchange, routed nowhere) every ``PROBE_SECONDS`` while not blocked: it learns
of an alarm within about a second, before a submission does. Then ``publish`` and
``check_publishable`` fail at once with ``BrokerBlocked``, the notice and its end are logged
(``broker_blocked``, ``broker_unblocked``), and ``state`` says ``blocked`` for readiness. The
main connection then publishes nothing, so it is not blocked, and deliveries and their acks go
on. Foreign exceptions become ``GatewayError``s here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelPreconditionFailed,
    DeliveryError,
    PublishError,
)

from gateway import metrics
from gateway.core.headers import RETRY_DELAY, HeaderValue
from gateway.core.topology import Topology
from gateway.errors import BrokerBlocked, BrokerUnavailable
from gateway.settings import AmqpSettings

log = structlog.get_logger("gateway.broker")

MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]

CONNECT_TIMEOUT_SECONDS = 5.0
BLOCKED_POLL_SECONDS = 0.2
PROBE_SECONDS = 0.5
LEADER_LOCATOR = {"x-queue-leader-locator": "balanced"}
"""Quorum queues' leaders spread over a cluster's nodes (RabbitMQ 3.10 and later)."""


def _unblocked_event(connection: AbstractConnection) -> asyncio.Event | None:
    """aiormq's own record of RabbitMQ's ``connection.blocked`` / ``unblocked`` notices.

    aiormq sets and clears this event on those frames but offers no public accessor or callback
    (aiormq 6-7); reading it is the one place the gateway looks inside aiormq. ``None`` when not
    found (another aiormq): then a blocked broker shows as confirm timeouts, as before.
    """
    transport = getattr(connection, "transport", None)
    underlying = getattr(transport, "connection", None)
    event = getattr(underlying, "_Connection__connection_unblocked", None)
    return event if isinstance(event, asyncio.Event) else None


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
        self._unblocked: asyncio.Event | None = None
        self._probe: AbstractConnection | None = None
        self._probe_channel: AbstractChannel | None = None
        self._probe_unblocked: asyncio.Event | None = None
        self._blocked_since: float | None = None
        self._urls = settings.urls or (settings.url,)
        self._next_url = 0
        self.url = self._urls[0]
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        """True while a connection with a declared topology is up."""
        return self._connected.is_set()

    @property
    def blocked(self) -> bool:
        """True while RabbitMQ has blocked this connection's publishing (a resource alarm)."""
        if not self.connected:
            return False
        return any(
            event is not None and not event.is_set()
            for event in (self._unblocked, self._probe_unblocked)
        )

    @property
    def state(self) -> str:
        """``connected``, ``blocked`` (by a broker alarm) or ``disconnected``, for readiness."""
        if not self.connected:
            return "disconnected"
        return "blocked" if self.blocked else "connected"

    def check_publishable(self) -> None:
        """Raise ``BrokerUnavailable`` or ``BrokerBlocked`` now if a publish cannot succeed.

        Called before a submission is journalled, so that a message refused for this reason
        leaves nothing behind that could be published later: a 503 from here is never delivered.
        (``publish`` refuses a blocked broker too, but as ``broker-unavailable``: by then the
        message is journalled.)
        """
        if not self.connected:
            raise BrokerUnavailable(
                "The message broker is not reachable right now; the message is not accepted. "
                "Send it again shortly with the same message id; it will not be delivered twice."
            )
        if self.blocked:
            raise BrokerBlocked(
                "The message broker has stopped taking messages for now (a memory or disk "
                "alarm); the message is not accepted. Send it again shortly with the same "
                "message id."
            )

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
        self._unblocked = None
        self._probe_unblocked = None
        self._probe_channel = None
        self._blocked_since = None
        probe, self._probe = self._probe, None
        if probe is not None and not probe.is_closed:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await probe.close()
        self._consuming = []
        self._exchanges = {}
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            lost = asyncio.Event()
            url = self._urls[self._next_url % len(self._urls)]
            self._next_url += 1
            try:
                await self._connect(lost, url)
                failures = 0
                log.info("broker_connected", url=_redact(url), nodes=len(self._urls))
                await self._watch(lost)
                log.warning("broker_connection_lost", url=_redact(url))
            except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                failures += 1
                log.warning(
                    "broker_unreachable",
                    url=_redact(url),
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
            finally:
                await self._close()
            # Another node may be up: try each once before pausing.
            if failures == 0 or failures % len(self._urls) == 0:
                await asyncio.sleep(self._settings.reconnect_seconds)

    async def _watch(self, lost: asyncio.Event) -> None:
        """Wait for the connection to drop, logging RabbitMQ's blocked / unblocked notices."""
        loop = asyncio.get_running_loop()
        next_probe = loop.time()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), BLOCKED_POLL_SECONDS)
            blocked = self.blocked
            if not blocked and loop.time() >= next_probe:
                next_probe = loop.time() + PROBE_SECONDS
                try:
                    await self._send_probe()
                except CONNECTION_EXCEPTIONS as exc:
                    log.warning("broker_probe_failed", error=type(exc).__name__)
                    return  # the connection is broken: reconnect
            if blocked and self._blocked_since is None:
                self._blocked_since = loop.time()
                log.warning(
                    "broker_blocked",
                    error=BrokerBlocked.code,
                    detail="RabbitMQ blocked publishing (connection.blocked: a memory or disk "
                    "alarm); submissions are refused with 503 until it lifts",
                )
            elif not blocked and self._blocked_since is not None:
                log.info(
                    "broker_unblocked", blocked_seconds=round(loop.time() - self._blocked_since, 1)
                )
                self._blocked_since = None

    async def _send_probe(self) -> None:
        """Publish an empty, transient message routed nowhere, so RabbitMQ tells of an alarm."""
        channel = self._probe_channel
        if channel is None or channel.is_closed:
            return
        await channel.default_exchange.publish(
            aio_pika.Message(b"", delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
            routing_key=f"{self._topology.prefix}.alarm-probe",
            mandatory=False,
        )

    async def _connect(self, lost: asyncio.Event, url: str) -> None:
        connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_SECONDS)
        self._connection = connection
        self.url = url
        self._unblocked = _unblocked_event(connection)
        probe = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_SECONDS)
        self._probe = probe
        probe.close_callbacks.add(lambda *_: lost.set())
        self._probe_channel = await probe.channel(publisher_confirms=False)
        self._probe_channel.close_callbacks.add(lambda *_: lost.set())
        self._probe_unblocked = _unblocked_event(probe)
        connection.close_callbacks.add(lambda *_: lost.set())
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        channel.close_callbacks.add(lambda *_: lost.set())
        await self._declare(connection, channel)
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

    async def _declare(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        """Declare every exchange and queue; safe to repeat on every connection.

        Every queue is a quorum queue, replicated across the nodes of a cluster, so that losing
        a node loses neither a queue nor its messages (a classic queue lives on one node, and
        cannot even be declared while that node is down).
        """
        topo = self._topology
        route = await channel.declare_exchange(
            topo.route_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await channel.declare_exchange(
            topo.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._declare_quorum(connection, topo.dead_queue, {"x-queue-type": "quorum"})
        dead_queue = await channel.get_queue(topo.dead_queue, ensure=False)
        await dead_queue.bind(dead, routing_key="#")
        retry = await channel.declare_exchange(
            topo.retry_exchange, aio_pika.ExchangeType.HEADERS, durable=True
        )
        for delay_ms in self.retry_delays_ms:
            name = topo.retry_queue(delay_ms)
            await self._declare_retry_queue(connection, name, delay_ms)
            retry_queue = await channel.get_queue(name, ensure=False)
            await retry_queue.bind(retry, arguments={"x-match": "all", RETRY_DELAY: delay_ms})
        for country in sorted(self._receivers):
            name = topo.delivery_queue(country)
            await self._declare_quorum(
                connection,
                name,
                {
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": topo.dead_exchange,
                    "x-delivery-limit": self._settings.delivery_limit,
                },
            )
            queue = await channel.get_queue(name, ensure=False)
            await queue.bind(route, routing_key=topo.binding_key(country))
        self._exchanges = {
            topo.route_exchange: route,
            topo.dead_exchange: dead,
            topo.retry_exchange: retry,
        }

    async def _declare_retry_queue(
        self, connection: AbstractConnection, name: str, delay_ms: int
    ) -> None:
        """Declare a retry queue as a quorum queue; keep one declared earlier as classic.

        Earlier gateways declared the retry queues as classic queues, and RabbitMQ refuses
        to redeclare a queue with another type. Such a queue keeps working on a single node;
        the warning says how to move it to a quorum queue for a cluster.
        """
        arguments = {
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": self._topology.route_exchange,
        }
        try:
            await self._declare_quorum(connection, name, arguments)
        except ChannelPreconditionFailed:
            log.warning(
                "broker_retry_queue_classic",
                queue=name,
                detail="declared earlier as a classic queue, which is lost while its node is "
                "down; delete it when empty to have it declared again as a quorum queue",
            )

    async def _declare_quorum(
        self, connection: AbstractConnection, name: str, arguments: dict[str, Any]
    ) -> None:
        """Declare a quorum queue whose leader goes to the node leading the fewest queues.

        Without ``x-queue-leader-locator: balanced`` every queue a gateway declares is led by
        the node it is connected to, so one node of a cluster does all the leaders' work.
        RabbitMQ refuses (406, which closes the channel, hence a channel of its own per try)
        to redeclare a queue with an argument it was not declared with: a queue declared by an
        earlier gateway keeps its arguments and its leader. Raises ``ChannelPreconditionFailed``
        if neither form matches the existing queue.
        """
        for given in ({**arguments, **LEADER_LOCATOR}, arguments):
            probe = await connection.channel()
            try:
                await probe.declare_queue(name, durable=True, arguments=given)
            except ChannelPreconditionFailed:
                if given is arguments:
                    raise
                continue
            finally:
                if not probe.is_closed:
                    with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                        await probe.close()
            if given is arguments:
                log.info("broker_queue_leader_kept", queue=name)
            return

    async def publish(self, outgoing: Outgoing) -> None:
        """Publish persistently and wait for RabbitMQ's confirm, or raise BrokerUnavailable.

        Many publishes may wait on their confirms at once (one per HTTP request), so confirms
        are pipelined on the one channel rather than serialised.
        """
        if self.blocked:
            # Blocked since ``check_publishable`` let the submission be journalled: refused
            # at once, but not ``broker-blocked`` (which promises nothing was journalled): the
            # journalled copy is published by the sweep once the alarm lifts.
            raise _outcome_unknown(
                "The message broker has just stopped taking messages (a memory or disk alarm).",
                outgoing.message_id,
            )
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
