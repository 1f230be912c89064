"""Prometheus metrics: what the gateway counts, and ``GET /metrics`` for Prometheus to scrape.

Built on the official ``prometheus-client`` in multiprocess mode: the worker supervisor
(``gateway.workers``) gives every run a fresh ``PROMETHEUS_MULTIPROC_DIR`` before any worker
starts, each worker writes its counters and histograms there, and whichever worker answers a
scrape adds up every worker's files, so each worker is counted once whichever one is asked. A
worker that dies is marked dead (``multiprocess.mark_process_dead``): its counts stay, its
live gauges go. Without that variable (one process, tests) the default registry is used.

Two kinds of series:

- **counted as it happens** (counters, histograms, the breaker gauge): the call sites in
  submission, delivery and the journal wrapper call the small functions below;
- **read at scrape time** (queue depth, age of the oldest waiting message, messages per state,
  seconds to expiry of certificates, CRLs and the gateway's own keys): the answering worker asks
  the broker, the journal and the trust store, at most once every ``SNAPSHOT_SECONDS``.

Every label is bounded: country codes, document types and error codes from our catalogues,
journal method names, queue kinds. Never message ids, document numbers or certificate names.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiohttp import web
from cryptography import x509
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.app_keys import JOURNAL, SOURCES
from gateway.core.breaker import BreakerPhase
from gateway.core.envelope import DocumentType, Envelope
from gateway.core.states import WAITING_STATES as _NOT_HANDED_OVER
from gateway.core.states import MessageState
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from gateway.app import Gateway
    from gateway.core.trust import TrustStore
    from gateway.journal import Journal

log = structlog.get_logger("gateway.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SNAPSHOT_SECONDS = 5.0
OLDEST_PAGE = 1000
OLDEST_MAX_PAGES = 20  # beyond 20,000 waiting for one receiver, the age is a lower bound
BREAKER_POLL_SECONDS = 5.0
BROKER_TIMEOUT_SECONDS = 3.0  # a broker that does not answer in time is reported down
PUBLISHED_AT_HEADER = "x-asw-first-published-at"
# The classic text format every Prometheus reads (Debian's 2.42 included); the names and
# labels here need none of the newer format's escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# States in which a message still waits for its hand-over.
WAITING_STATES = tuple(state for state in MessageState if state in _NOT_HANDED_OVER)
# The families read at scrape time (see ``Sources``), for the docs and the rules' tests.
SCRAPE_TIME_FAMILIES = (
    "asw_broker_up",
    "asw_queue_messages",
    "asw_journal_messages",
    "asw_oldest_waiting_seconds",
    "asw_certificate_expiry_seconds",
)
BREAKER_VALUES = {BreakerPhase.CLOSED: 0.0, BreakerPhase.HALF_OPEN: 1.0, BreakerPhase.OPEN: 2.0}

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_DOCUMENT_TYPES = frozenset(d.value for d in DocumentType)
_CHANNELS = frozenset({"http", "folder", "pull", "federation", "receipt", "replay", "sweep"})

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
JOURNAL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

ACCEPTED = Counter(
    "asw_messages_accepted",
    "Documents accepted for delivery, by claimed sender, document type and channel.",
    ["sender", "document_type", "channel"],
)
REFUSED = Counter(
    "asw_messages_refused",
    "Documents refused at ingest, by sender (claimed or authenticated), document type and code.",
    ["sender", "document_type", "code", "channel"],
)
DELIVERED = Counter(
    "asw_messages_delivered",
    "Documents handed over to the receiving party, by receiver.",
    ["receiver"],
)
RETRIED = Counter(
    "asw_delivery_retries",
    "Delivery attempts that failed transiently and were scheduled again, by receiver and reason.",
    ["receiver", "reason"],
)
DEAD_LETTERED = Counter(
    "asw_messages_dead_lettered",
    "Documents parked as dead letters, by receiver and reason.",
    ["receiver", "reason"],
)
INGEST_SECONDS = Histogram(
    "asw_ingest_seconds",
    "Time from a document's arrival to the answer (accepted or refused), by outcome.",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
SUBMIT_TO_DELIVERY_SECONDS = Histogram(
    "asw_submit_to_delivery_seconds",
    "Time from the first publish of an accepted document to its hand-over, by receiver.",
    ["receiver"],
    buckets=DELIVERY_BUCKETS,
)
JOURNAL_SECONDS = Histogram(
    "asw_journal_operation_seconds",
    "Duration of journal operations, by operation and outcome (ok or error).",
    ["operation", "outcome"],
    buckets=JOURNAL_BUCKETS,
)
BREAKER = Gauge(
    "asw_partner_breaker_state",
    "Circuit breaker of a receiving party: 0 closed, 1 half-open, 2 open (worst live worker).",
    ["partner"],
    multiprocess_mode="livemax",
)
TRUST_RELOAD_PROBLEMS = Gauge(
    "asw_trust_reload_problems",
    "Trust files (CA certificates, CRLs) the last reload could not read; previous trust kept.",
    multiprocess_mode="livemax",
)
RETENTION_RUNS = Counter(
    "asw_retention_runs",
    "Retention passes, by the node (node.name) and outcome: ran (this node held the journal's "
    "retention lock and archived/purged) or skipped (another node or worker held it).",
    ["node", "outcome"],
)
RETENTION_PURGED = Counter(
    "asw_retention_purged",
    "Journal entries archived then purged by retention on this node, by kind.",
    ["node", "kind"],
)
RETENTION_LAST_RUN = Gauge(
    "asw_retention_last_run_timestamp_seconds",
    "When this node last ran (not skipped) a retention pass, Unix time.",
    ["node"],
    multiprocess_mode="max",
)


def retention_pass(node: str, *, skipped: bool, messages: int, refusals: int) -> None:
    """Count one retention pass of ``node`` (which ran it, or skipped it, and what it purged)."""
    RETENTION_RUNS.labels(node, "skipped" if skipped else "ran").inc()
    if not skipped:
        RETENTION_PURGED.labels(node, "message").inc(messages)
        RETENTION_PURGED.labels(node, "refusal").inc(refusals)
        RETENTION_LAST_RUN.labels(node).set(time.time())


def country_label(value: object) -> str:
    """A two-letter country code, or ``unknown``: never anything unbounded."""
    text = str(value or "")
    return text if _COUNTRY.match(text) else "unknown"


def document_type_label(value: object) -> str:
    """A document type of our catalogue, or ``unknown``."""
    text = str(value or "")
    return text if text in _DOCUMENT_TYPES else "unknown"


def code_label(value: object) -> str:
    """A kebab-case error code, or ``unknown``."""
    text = str(value or "")
    return text if _CODE.match(text) else "unknown"


def channel_label(value: object) -> str:
    """One of the intake channels, or ``other``."""
    text = str(value or "")
    return text if text in _CHANNELS else "other"


# --- counted as it happens -------------------------------------------------------------------


def accepted(envelope: Envelope, channel: str, started: float) -> None:
    """A document was accepted (or resubmitted); ``started`` is its ``perf_counter`` start."""
    ACCEPTED.labels(
        country_label(envelope.sender.country),
        document_type_label(envelope.document_type.value),
        channel_label(channel),
    ).inc()
    INGEST_SECONDS.labels("accepted").observe(time.perf_counter() - started)


def refused(
    error: GatewayError,
    channel: str,
    started: float,
    *,
    sender: str | None = None,
    envelope: Envelope | None = None,
) -> None:
    """A document was refused with ``error``, or could not be taken (broker or journal down).

    The sender is the envelope's when it was read, else the authenticated caller's country.
    """
    REFUSED.labels(
        country_label(envelope.sender.country if envelope else sender),
        document_type_label(envelope.document_type.value if envelope else None),
        code_label(error.code),
        channel_label(channel),
    ).inc()
    INGEST_SECONDS.labels("refused").observe(time.perf_counter() - started)


def _receiver_of(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    return country_label(headers.get("x-asw-receiver"))


def delivered(receiver: str, message: AbstractIncomingMessage) -> None:
    """A document was handed over; times it from its first publish when the header says."""
    DELIVERED.labels(country_label(receiver)).inc()
    published = (message.headers or {}).get(PUBLISHED_AT_HEADER)
    if isinstance(published, int | float) and not isinstance(published, bool):
        SUBMIT_TO_DELIVERY_SECONDS.labels(country_label(receiver)).observe(
            max(0.0, time.time() - float(published))
        )


def retried(message: AbstractIncomingMessage, reason: str) -> None:
    """A delivery attempt failed transiently and the message went to a retry queue."""
    RETRIED.labels(_receiver_of(message), code_label(reason)).inc()


def dead_lettered(message: AbstractIncomingMessage, reason: str) -> None:
    """A message was parked as a dead letter."""
    DEAD_LETTERED.labels(_receiver_of(message), code_label(reason)).inc()


def published_at() -> float:
    """The value of the first-publish header (seconds since the epoch)."""
    return round(time.time(), 3)


# --- the journal, timed ----------------------------------------------------------------------


class TimedJournal:
    """The journal with every coroutine method timed into ``asw_journal_operation_seconds``.

    Wraps any backend at wiring time; attributes that are not coroutine functions (and the
    pull-inbox methods' presence, which ``inbox_of`` checks) pass straight through.
    """

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._wrapped: dict[str, Callable[..., Awaitable[Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not asyncio.iscoroutinefunction(attribute):
            return attribute
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped[name] = _timed(name, attribute)
        return wrapped


def _timed(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    ok = JOURNAL_SECONDS.labels(name, "ok")

    async def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await method(*args, **kwargs)
        except BaseException:
            JOURNAL_SECONDS.labels(name, "error").observe(time.perf_counter() - started)
            raise
        ok.observe(time.perf_counter() - started)
        return result

    return call


def timed_journal(journal: Journal) -> Journal:
    """``journal`` with its operations timed (same interface)."""
    return cast("Journal", TimedJournal(journal))


# --- the worker supervisor -------------------------------------------------------------------


def prepare_multiprocess_dir() -> Path:
    """Give this run a fresh, empty ``PROMETHEUS_MULTIPROC_DIR`` for the workers to inherit.

    An operator's directory (the variable already set) is emptied of earlier runs' files;
    otherwise a new temporary directory is made. Call before starting any worker.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="asw-metrics-"))
        os.environ[MULTIPROC_ENV] = str(directory)
    log.info("metrics_multiprocess_dir", directory=str(directory))
    return directory


def worker_dead(pid: int | None) -> None:
    """Mark a worker that ended: its live gauges stop counting, its counters stay."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and pid is not None:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(directory: Path) -> None:
    """Remove a directory ``prepare_multiprocess_dir`` made itself (not an operator's)."""
    if directory.name.startswith("asw-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)


# --- read at scrape time ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The values read at scrape time, as metric families."""

    families: tuple[GaugeMetricFamily, ...]
    taken: float


class _Families(Collector):
    def __init__(self, families: Iterable[GaugeMetricFamily]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families


@dataclass
class Sources:
    """Where the scrape-time series come from: one running gateway's parts."""

    gateway: Gateway
    journal: Journal
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _snapshot: Snapshot | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def snapshot(self) -> Snapshot:
        """The scrape-time families, read again when older than ``SNAPSHOT_SECONDS``."""
        async with self._lock:
            current = self._snapshot
            if current is None or time.monotonic() - current.taken > SNAPSHOT_SECONDS:
                current = self._snapshot = Snapshot(
                    families=tuple(await self._read()), taken=time.monotonic()
                )
            return current

    async def _read(self) -> list[GaugeMetricFamily]:
        now = self.clock()
        families = await self._queues()
        try:
            families.extend(await self._journal_families(now))
        except GatewayError as exc:  # the journal is unavailable: the other series still go out
            log.warning("metrics_journal_unavailable", error=exc.code)
        families.append(self._expiry(now))
        return families

    async def _queues(self) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "asw_broker_up", "1 when the message broker answered this scrape, else 0."
        )
        depth = GaugeMetricFamily(
            "asw_queue_messages",
            "Messages in the broker's queues: delivery per receiver, retry and dead letters.",
            labels=["kind", "receiver"],
        )
        gateway = self.gateway
        try:
            depths = await asyncio.wait_for(gateway.broker.queue_depths(), BROKER_TIMEOUT_SECONDS)
        except (GatewayError, TimeoutError):
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        topology = gateway.topology
        retry_total = 0
        retry_names = {topology.retry_queue(d) for d in gateway.broker.retry_delays_ms}
        for country in sorted(gateway.settings.parties):
            name = topology.delivery_queue(country)
            if name in depths:
                depth.add_metric(["delivery", country_label(country)], float(depths[name]))
        for name, count in depths.items():
            if name in retry_names:
                retry_total += count
        depth.add_metric(["retry", ""], float(retry_total))
        depth.add_metric(["dead", ""], float(depths.get(topology.dead_queue, 0)))
        return [up, depth]

    async def _journal_families(self, now: datetime) -> list[GaugeMetricFamily]:
        states = GaugeMetricFamily(
            "asw_journal_messages",
            "Live (non-test) messages in the journal, by receiver and state.",
            labels=["receiver", "state"],
        )
        oldest = GaugeMetricFamily(
            "asw_oldest_waiting_seconds",
            "Age of the oldest message not yet handed over (accepted, queued, retrying or "
            "delivering), by receiver; 0 when nothing waits.",
            labels=["receiver"],
        )
        counts = await self.journal.counts()
        waiting: set[str] = set()
        for row in counts.rows:
            states.add_metric([country_label(row.receiver), row.state.value], float(row.count))
            if row.state in WAITING_STATES and row.count:
                waiting.add(row.receiver)
        for receiver in sorted(self.gateway.settings.parties):
            age = 0.0
            if receiver in waiting:
                first = await self._oldest(receiver)
                age = max(0.0, (now - first).total_seconds()) if first else 0.0
            oldest.add_metric([country_label(receiver)], age)
        return [states, oldest]

    async def _oldest(self, receiver: str) -> datetime | None:
        """When the oldest waiting message to ``receiver`` arrived (paged, newest first)."""
        return await oldest_waiting(self.journal, receiver)

    def _expiry(self, now: datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "asw_certificate_expiry_seconds",
            "Seconds until the soonest expiry, by country and kind: ca and crl (next update) of "
            "the trust store, signer and gateway (the gateway's own keys), tls (its HTTPS "
            "certificate). Negative once expired.",
            labels=["country", "kind"],
        )
        soonest: dict[tuple[str, str], datetime] = {}

        def note(country: str, kind: str, expires: datetime) -> None:
            key = (country_label(country) if country else "", kind)
            if key not in soonest or expires < soonest[key]:
                soonest[key] = expires

        gateway = self.gateway
        trust_source = gateway.trust
        store: TrustStore | None = trust_source.current() if trust_source else None
        if store is not None:
            for entry in store.expiring(now=now, within=timedelta(days=365 * 100)):
                note(entry.country, entry.kind, entry.expires)
        for country, key in gateway.ingest.signers.items():
            note(country, "signer", key.certificate.not_valid_after_utc)
        for country, key in gateway.receipt_keys.items():
            note(country, "gateway", key.certificate.not_valid_after_utc)
        tls = _tls_expiry(gateway.settings.http.tls_cert)
        if tls is not None:
            note("", "tls", tls)
        for (country, kind), expires in sorted(soonest.items()):
            family.add_metric([country, kind], (expires - now).total_seconds())
        return family


async def oldest_waiting(journal: Journal, receiver: str) -> datetime | None:
    """When the oldest live message waiting for ``receiver`` arrived (paged, newest first)."""
    found: datetime | None = None
    for state in WAITING_STATES:
        before: datetime | None = None
        for _ in range(OLDEST_MAX_PAGES):
            page = await journal.list_messages(
                state=state, receiver=receiver, test=False, limit=OLDEST_PAGE, before=before
            )
            if not page:
                break
            last = page[-1].record.received_at
            found = last if found is None else min(found, last)
            if len(page) < OLDEST_PAGE:
                break
            before = last
    return found


def _tls_expiry(path: str) -> datetime | None:
    if not path:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return certificate.not_valid_after_utc


def update_breakers(adapters: Mapping[str, object]) -> None:
    """Set ``asw_partner_breaker_state`` from every adapter that has a breaker."""
    for country, adapter in adapters.items():
        state = getattr(adapter, "breaker_state", None)
        phase = getattr(state, "phase", None)
        if isinstance(phase, BreakerPhase):
            BREAKER.labels(country_label(country)).set(BREAKER_VALUES[phase])


# --- the HTTP side ---------------------------------------------------------------------------


def exposition(snapshot: Snapshot) -> bytes:
    """The text exposition: every worker's counted series, then the scrape-time ones."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_Families(snapshot.families))
    return counted + generate_latest(extra)


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text exposition (operators only)."""
    sources = request.app[SOURCES]
    update_breakers(sources.gateway.adapters)
    trust = sources.gateway.trust
    TRUST_RELOAD_PROBLEMS.set(len(trust.problems) if trust is not None else 0)
    snapshot = await sources.snapshot()
    body = exposition(snapshot)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def mount(app: web.Application, gateway: Gateway) -> None:
    """Serve ``/metrics`` for ``gateway`` and keep its breaker gauge current in this worker.

    Its cleanup context must come after the one that opens the journal (``app[JOURNAL]``).
    """

    async def watch_breakers(app: web.Application) -> AsyncIterator[None]:
        app[SOURCES] = Sources(gateway=gateway, journal=app[JOURNAL])
        adapters = gateway.adapters

        async def poll() -> None:
            while True:
                update_breakers(adapters)
                await asyncio.sleep(BREAKER_POLL_SECONDS)

        # Under the gateway's supervisor, which stops it with the other background tasks.
        gateway.supervisor.start("metrics-breakers", poll)
        yield

    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(watch_breakers)
