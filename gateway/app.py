"""Wiring: the one place that builds the gateway's parts from the settings and joins them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from adapters import AdapterOptions, build_adapter, parse_options
from adapters.drop_folder import (
    DropFolderAdapter,
    DropFolderOptions,
    FolderIntake,
    warn_unsafe_permissions,
)
from adapters.pull_inbox import PullInboxOptions
from adapters.remote_gateway import RemoteGatewayOptions
from gateway import metrics
from gateway.app_keys import (
    ADAPTERS,
    AUDIT,
    BROKER,
    CLOCK,
    INBOX_OPTIONS,
    INBOX_RECEIPTS,
    JOURNAL,
    OPERATIONS,
    OWN_KEYS,
    READINESS,
    SETTINGS,
    SUBMISSIONS,
    TRUST,
    TRUST_RELOADS,
)
from gateway.audit import AuditTrail
from gateway.auth import auth_middleware, check_auth_exposure, server_ssl_context
from gateway.broker import Broker
from gateway.connections import ConnectionGuard, raise_open_file_limit
from gateway.console import add_console_routes
from gateway.core.aeo import load_mra
from gateway.core.handover import Adapter, InboxStore
from gateway.core.parsing import ParseLimits
from gateway.core.parties import load_parties
from gateway.core.pipeline import Ingest
from gateway.core.routing import RoutingTable
from gateway.core.signatures import SigningKey
from gateway.core.topology import Topology
from gateway.core.trust import TrustStore
from gateway.core.validation import Validator
from gateway.delivery import DeliveryWorker
from gateway.errors import GatewayError, SettingsError
from gateway.inbox import add_inbox_routes, escalate_all
from gateway.journal import Journal, audit_of, inbox_of, open_journal
from gateway.offload import RequestPool
from gateway.openapi import add_openapi_routes
from gateway.pki_files import read_signing_key
from gateway.readiness import REPORT_SECONDS, ReadinessBoard, WorkerReport
from gateway.receipt_issuer import ReceiptIssuer
from gateway.replay import DeadLetterReplay
from gateway.retention import check_retention, run_retention
from gateway.schema_files import xsd_dir
from gateway.settings import Settings, journal_url
from gateway.submission import Submissions
from gateway.supervisor import Supervisor
from gateway.trust_loader import open_trust
from gateway.web import (
    add_routes,
    errors_middleware,
    health_body,
    limits_middleware,
    readiness,
    utc_now,
)

log = structlog.get_logger("gateway.app")

BROKER_GRACE_SECONDS = 3.0
DRAIN_MARGIN_SECONDS = 5.0
"""Added to the largest adapter timeout for the default drain: recording the hand-over."""
MIN_DRAIN_SECONDS = 10.0
HTTP_ADAPTER_TIMEOUT_SECONDS = 10.0
"""The HTTP adapters' own default ``timeout_seconds``."""


def _seconds(option: str | None, default: float) -> float:
    """An adapter's seconds option (the adapter itself reports a malformed one)."""
    try:
        return float(option) if option is not None else default
    except ValueError:
        return default


def drain_seconds(settings: Settings) -> float:
    """How long a stopping gateway lets hand-overs in flight finish (``node.drain_seconds``).

    By default the largest adapter timeout (``timeout_seconds`` of a party's options; 10 s,
    the adapters' default, for HTTP adapters without one) plus ``DRAIN_MARGIN_SECONDS``, and
    at least ``MIN_DRAIN_SECONDS``: a hand-over that started just before SIGTERM can still end,
    be recorded and acked, instead of being cut short and handed over again after a restart.
    """
    if settings.node.drain_seconds > 0:
        return settings.node.drain_seconds
    timeouts = [
        _seconds(party.options.get("timeout_seconds"), HTTP_ADAPTER_TIMEOUT_SECONDS)
        for party in settings.parties.values()
        if party.adapter in {"http-push", "remote-gateway"}
    ]
    return max(MIN_DRAIN_SECONDS, max(timeouts, default=0.0) + DRAIN_MARGIN_SECONDS)


def parse_limits(settings: Settings) -> ParseLimits:
    """The XML bounds every document is read with."""
    return ParseLimits(
        max_bytes=settings.http.max_body_bytes, max_depth=settings.documents.max_depth
    )


def load_keys(settings: Settings, role: str, countries: list[str]) -> dict[str, SigningKey]:
    """``<keys_dir>/<CC>/<role>.key|pem`` for each country; every missing file reported."""
    keys_dir = Path(settings.pki.keys_dir)
    keys: dict[str, SigningKey] = {}
    problems: list[str] = []
    for country in countries:
        try:
            keys[country] = read_signing_key(keys_dir, country, role)
        except OSError as exc:
            problems.append(
                f"{role} key of {country}: cannot read {exc.filename} ({exc.strerror}); "
                f"create a development PKI with `asw-toolkit pki init {keys_dir}`"
            )
        except SettingsError as exc:
            problems.extend(f"{role} key of {country}: {p}" for p in exc.problems)
    if problems:
        raise SettingsError(problems)
    return keys


def load_signers(settings: Settings) -> dict[str, SigningKey]:
    """The document signer keys of the parties the gateway signs for."""
    countries = [c for c, party in sorted(settings.parties.items()) if party.sign_on_behalf]
    return load_keys(settings, "signer", countries)


def build_ingest(settings: Settings) -> Ingest:
    """Compile the schemas, load signing keys and build the routing table once."""
    topology = Topology(settings.amqp.prefix)
    return Ingest(
        limits=parse_limits(settings),
        validator=Validator.load(
            xsd_dir(settings.documents.xsd_dir), mra=load_mra(settings.documents.mra_file)
        ),
        routes=RoutingTable(
            topology=topology,
            receivers=frozenset(settings.parties),
            parties=load_parties(settings.documents.parties_file),
        ),
        signers=load_signers(settings),
        require_signature=settings.pki.require_signature,
    )


def adapter_options(settings: Settings) -> dict[str, AdapterOptions]:
    """Every party's adapter options, checked once at start; every problem in one error."""
    checked: dict[str, AdapterOptions] = {}
    problems: list[str] = []
    for country, party in sorted(settings.parties.items()):
        try:
            checked[country] = parse_options(country, party.adapter, party.options)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return checked


def inbox_options(options: Mapping[str, AdapterOptions]) -> dict[str, PullInboxOptions]:
    """The options of the parties using the pull inbox."""
    return {c: o for c, o in options.items() if isinstance(o, PullInboxOptions)}


def build_intakes(
    settings: Settings, options: Mapping[str, AdapterOptions], submissions: Submissions
) -> list[FolderIntake]:
    """A watched outbox for every drop-folder party that has one configured."""
    return [
        FolderIntake(
            country,
            checked.outbox,
            submissions.submit,
            poll_seconds=checked.poll_seconds,
            access=checked.access,
            max_bytes=settings.http.max_body_bytes,
            refusals=submissions.record_refusal,
        )
        for country, checked in sorted(options.items())
        if isinstance(checked, DropFolderOptions) and checked.outbox is not None
    ]


def build_adapters(options: Mapping[str, AdapterOptions], inbox: InboxStore) -> dict[str, Adapter]:
    """One adapter per configured receiving party; ``inbox`` is for pull-inbox parties."""
    return {country: build_adapter(checked, inbox=inbox) for country, checked in options.items()}


def request_pool(settings: Settings) -> RequestPool:
    """The bounded pool for heavy work on documents submitted over HTTP (one per worker)."""
    return RequestPool(threads=settings.http.request_threads, queue=settings.http.request_queue)


def create_app(
    settings: Settings,
    *,
    broker: Broker,
    trust: Callable[[], TrustStore] | None,
    options: Mapping[str, AdapterOptions],
    clock: Callable[[], datetime] = utc_now,
    pool: RequestPool | None = None,
) -> web.Application:
    """The aiohttp application: middlewares, routes and the keys known before start-up.

    The resources opened at start-up (journal, adapters, services, broker, background tasks)
    are set by the gateway's cleanup contexts (``Gateway.application``).
    """
    pool = pool or request_pool(settings)
    app = web.Application(
        middlewares=[
            errors_middleware,
            auth_middleware(settings, trust=trust),
            limits_middleware(settings, pool),
        ],
        client_max_size=settings.http.max_body_bytes + 1,
    )

    async def request_pool_ctx(_app: web.Application) -> AsyncIterator[None]:
        yield
        pool.close()

    app.cleanup_ctx.append(request_pool_ctx)
    app[SETTINGS] = settings
    app[TRUST] = trust
    app[BROKER] = broker
    app[CLOCK] = clock
    app[INBOX_OPTIONS] = inbox_options(options)
    add_routes(app)
    add_inbox_routes(app)
    add_console_routes(app)
    add_openapi_routes(app)
    return app


class Gateway:
    """A running gateway: HTTP API, journal, broker connection and delivery workers."""

    def __init__(
        self,
        settings: Settings,
        adapters: Mapping[str, Adapter] | None = None,
        *,
        housekeeping: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ):
        check_auth_exposure(settings.http)
        self.settings = settings
        # Jobs one process of a node runs (retention); the other workers leave them alone.
        self.housekeeping = housekeeping
        # The one clock of journal times, rules and deadlines (tests inject another).
        self.clock = clock
        self.topology = Topology(settings.amqp.prefix)
        self.broker = Broker(settings.amqp, self.topology, frozenset(settings.parties))
        self.adapter_options = adapter_options(settings)
        # Built in start(), once the journal (a pull inbox's store) is open, unless given.
        self._given_adapters = dict(adapters) if adapters is not None else None
        self.adapters: dict[str, Adapter] = dict(self._given_adapters or {})
        self.ingest = build_ingest(settings)
        self.trust = open_trust(settings, required=settings.pki.require_signature)
        # A receipt is signed by the gateway that hands the document to the receiving NSW; for a
        # party behind a remote gateway, that gateway issues it, with its own key.
        local_receivers = [
            country
            for country, party in sorted(settings.parties.items())
            if party.adapter != "remote-gateway"
        ]
        self.receipt_keys = (
            load_keys(settings, "gateway", local_receivers) if settings.pki.receipts else {}
        )
        self.journal: Journal | None = None
        self.submissions: Submissions | None = None
        self.drain_seconds = drain_seconds(settings)
        self.intakes: list[FolderIntake] = []
        self.supervisor = Supervisor()
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.port: int | None = None
        self.draining = False
        self._board: ReadinessBoard | None = None
        self._report: WorkerReport | None = None

    def application(self) -> web.Application:
        """The aiohttp application with one cleanup context per resource, opened in order
        (journal, adapters, services, broker, metrics, background tasks) when the runner is
        set up and closed in reverse order when it is cleaned up."""
        app = create_app(
            self.settings,
            broker=self.broker,
            trust=self.trust.current if self.trust else None,
            options=self.adapter_options,
            clock=self.clock,
        )
        if self.trust is not None:
            app[TRUST_RELOADS] = self.trust
        app[READINESS] = self.readiness
        app.cleanup_ctx.extend(
            [self._journal_ctx, self._adapters_ctx, self._services_ctx, self._broker_ctx]
        )
        metrics.mount(app, self)
        app.cleanup_ctx.append(self._background_ctx)
        return app

    async def _journal_ctx(self, app: web.Application) -> AsyncIterator[None]:
        url = journal_url(self.settings.journal)
        journal = self.journal = metrics.timed_journal(
            await open_journal(url, op_timeout=self.settings.journal.op_timeout_seconds)
        )
        app[JOURNAL] = journal
        app[AUDIT] = AuditTrail(audit_of(journal), utc_now)
        yield
        await journal.close()

    async def _adapters_ctx(self, app: web.Application) -> AsyncIterator[None]:
        if self._given_adapters is None:
            self.adapters = build_adapters(self.adapter_options, inbox_of(app[JOURNAL]))
        app[ADAPTERS] = self.adapters
        yield
        for adapter in self.adapters.values():
            await adapter.close()

    async def _services_ctx(self, app: web.Application) -> AsyncIterator[None]:
        journal, trust = app[JOURNAL], self.trust
        submissions = Submissions(
            self.ingest,
            self.broker,
            journal,
            self.clock,
            trust=trust.current if trust else lambda: None,
            offload_bytes=self.settings.http.offload_bytes,
            remote_gateways={
                cc: options.receipt_signer
                for cc, options in self.adapter_options.items()
                if isinstance(options, RemoteGatewayOptions)
            },
            refusal_payload_max_bytes=self.settings.journal.refusal_payload_max_bytes,
            answer_keys=self.receipt_keys,
            answer_register_queries=self.settings.documents.answer_register_queries,
        )
        self.submissions = submissions
        receipts = (
            ReceiptIssuer(submissions, self.receipt_keys) if self.settings.pki.receipts else None
        )
        DeliveryWorker(
            self.broker,
            self.topology,
            self.adapters,
            self.settings.amqp,
            journal=journal,
            clock=self.clock,
            lease_seconds=self.settings.journal.lease_seconds,
            trust=trust.current if trust and self.settings.pki.verify_on_delivery else None,
            limits=parse_limits(self.settings),
            offload_bytes=self.settings.http.offload_bytes,
            receipts=receipts,
        ).register()
        app[SUBMISSIONS] = submissions
        app[OWN_KEYS] = {"signer": submissions.ingest.signers, "gateway": self.receipt_keys}
        app[OPERATIONS] = DeadLetterReplay(journal, self.broker, submissions, self.clock)
        if receipts is not None:
            app[INBOX_RECEIPTS] = receipts
        self.intakes = build_intakes(self.settings, self.adapter_options, submissions)
        yield

    async def _broker_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        await self.broker.start()
        # Give the broker a moment before listening, so that a worker taking connections
        # (several share the port) can usually accept at once; when the broker is down, the
        # gateway listens anyway and answers 503 broker-unavailable until it is back.
        await self.broker.wait_connected(BROKER_GRACE_SECONDS)
        yield
        await self.broker.stop(self.drain_seconds)  # at once when stop() drained it already

    async def _background_ctx(self, app: web.Application) -> AsyncIterator[None]:
        # A failing file or scan is logged by the intake itself and its loop goes on; anything
        # that still ends a background task is logged and restarted by the supervisor.
        submissions = app[SUBMISSIONS]
        for intake in self.intakes:
            self.supervisor.start(f"intake-{intake.country}", intake.run)
        self.supervisor.start("sweep-unconfirmed", lambda: self._sweep(submissions))
        if self.trust is not None:
            self.supervisor.start("trust-reload", self.trust.watch)
        if self.housekeeping and self.settings.journal.retention_check_seconds > 0:
            try:
                check_retention(self.settings.journal)
            except SettingsError as exc:  # keep everything rather than guess
                log.warning("retention_refused", detail=exc.detail)
            else:
                journal = app[JOURNAL]
                self.supervisor.start("journal-retention", lambda: self._retention(journal))
        report = self._report
        if report is not None:
            self.supervisor.start("readiness-report", lambda: self._report_often(report))
        yield
        await self.supervisor.stop()

    async def start(
        self,
        *,
        port: int | None = None,
        reuse_port: bool = False,
        board: ReadinessBoard | None = None,
        report: WorkerReport | None = None,
    ) -> None:
        """Open the resources (journal, adapters, broker in the background, background tasks)
        through the application's cleanup contexts, then listen.

        Under a supervisor (``gateway.workers``), ``report`` is where this worker reports its
        readiness and ``board`` the supervisor's verdict that ``/readyz`` answers.
        """
        self._board = board
        self._report = report
        open_files = raise_open_file_limit()
        http = self.settings.http
        # keepalive_timeout is also armed when a connection opens: one that has not sent a
        # complete request by then is closed (aiohttp's web_protocol), so it is the header timeout.
        runner = web.AppRunner(
            self.application(), access_log=None, keepalive_timeout=http.header_timeout_seconds
        )
        self._runner = runner
        try:
            await runner.setup()
        except BaseException:
            self._runner = None
            await runner.cleanup()  # closes what the cleanup contexts opened before the failure
            await self.supervisor.stop()  # and any task started before the background context
            raise
        server = self._runner.server
        if server is None:  # setup() makes it; a failed setup raised already
            raise RuntimeError("the HTTP server was not set up")
        self.guard = ConnectionGuard(
            server,
            connections=lambda: len(server.connections),
            max_connections=http.max_connections,
            health=self._health,
            problem_base_uri=http.problem_base_uri,
        )
        self._listener = await asyncio.get_running_loop().create_server(
            self.guard,
            http.host,
            http.port if port is None else port,
            ssl=server_ssl_context(http, trust_dir=Path(self.settings.pki.trust_dir)),
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        sockets = self._listener.sockets
        self.port = sockets[0].getsockname()[1] if sockets else http.port
        self._check_folder_permissions()
        log.info(
            "gateway_started",
            host=http.host,
            port=self.port,
            auth=http.auth,
            max_connections=http.max_connections,
            open_files=open_files,
        )

    async def assess(self) -> tuple[int, dict[str, Any]]:
        """This worker's own readiness: broker, journal, trust reloads, draining."""
        if self.journal is None:  # the guard exists only once the journal is open
            raise RuntimeError("readiness asked before the journal was opened")
        problems = self.trust.problems if self.trust is not None else ()
        draining = self.draining or (self.submissions is not None and self.submissions.draining)
        return await readiness(self.broker, self.journal, problems, draining=draining)

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """What /readyz answers: the supervisor's verdict over every worker, or this one's."""
        if self._board is not None:
            return self._board.read()
        return await self.assess()

    async def _report_often(self, report: WorkerReport) -> None:
        """Tell the supervisor this worker's readiness every ``REPORT_SECONDS``."""
        while True:
            try:
                answer = await self.assess()
                await asyncio.to_thread(report.write, answer)  # a file system may be slow
            except Exception as exc:  # noqa: BLE001 - keep reporting; stale = not ready meanwhile
                log.warning("readiness_report_failed", error=type(exc).__name__, detail=str(exc))
            await asyncio.sleep(REPORT_SECONDS)

    async def _health(self, path: str) -> tuple[int, dict[str, Any]]:
        """What /healthz and /readyz answer on a connection beyond the limit (as the routes do)."""
        if path == "/readyz":
            return await self.readiness()
        return 200, health_body(self.broker, self.settings.node.name)

    def _check_folder_permissions(self) -> None:
        """Warn (``folder_permissions_unsafe``) on drop folders other users could tamper with."""
        for country, adapter in sorted(self.adapters.items()):
            if isinstance(adapter, DropFolderAdapter):
                warn_unsafe_permissions(country, adapter.folders(), adapter.access)
        for intake in self.intakes:
            warn_unsafe_permissions(intake.country, intake.folders(), intake.access)

    async def _sweep(self, submissions: Submissions) -> None:
        """Every ``journal.sweep_seconds``, publish what was journalled but never confirmed."""
        period = self.settings.journal.sweep_seconds
        while True:
            await asyncio.sleep(period)
            if not self.broker.connected:
                continue
            try:
                await submissions.sweep_unconfirmed(older_than=timedelta(seconds=period))
                # Pull-inbox documents fetched and never acknowledged go to the operators.
                await escalate_all(
                    submissions.journal, inbox_options(self.adapter_options), at=utc_now()
                )
            except GatewayError as exc:
                log.warning("sweep_failed", error=exc.code, detail=exc.detail)

    async def _retention(self, journal: Journal) -> None:
        """Every ``journal.retention_check_seconds``: archive, then purge, what has expired.

        The first run waits one period, so a restart loop never turns into a purge loop. A
        failing run is logged and tried again next period.
        """
        period = self.settings.journal.retention_check_seconds
        while True:
            await asyncio.sleep(period)
            try:
                node = self.settings.node.name
                report = await run_retention(
                    journal, self.settings.journal, now=utc_now(), node=node
                )
                metrics.retention_pass(
                    node,
                    skipped=report.skipped,
                    messages=report.purged_messages,
                    refusals=report.purged_refusals,
                )
            except (GatewayError, OSError) as exc:
                log.warning("retention_failed", error=getattr(exc, "code", type(exc).__name__))

    async def stop(self) -> None:
        """Stop intake and listening, drain deliveries, close the broker and the journal.

        New documents are refused (503 ``draining``) from the first moment and the background
        tasks (intakes, sweep) stop; hand-overs in flight get ``drain_seconds`` while HTTP
        keeps answering (503 draining, ``/readyz`` 503: a clear refusal with Retry-After rather
        than a refused connection). Then the cleanup contexts close in reverse order, the
        journal last, after the last handler has ended. Under a supervisor, this worker's
        report says ``draining`` at once, so the supervisor's verdict does too.
        """
        self.draining = True
        if self._report is not None and self.journal is not None:
            with contextlib.suppress(Exception):
                self._report.write(await self.assess())
        log.info("gateway_stopping", drain_seconds=self.drain_seconds)
        if self.submissions is not None:
            self.submissions.drain()
        await self.supervisor.stop()
        await self.broker.stop(self.drain_seconds)
        if self._listener is not None:
            self._listener.close()
        if self.guard is not None:
            self.guard.close()
        if self._runner is not None:
            # The cleanup contexts close in reverse: background tasks, metrics, broker (drains
            # deliveries), adapters, journal.
            await self._runner.cleanup()
        log.info("gateway_stopped")


async def serve(
    settings: Settings,
    *,
    reuse_port: bool = False,
    housekeeping: bool = True,
    board: ReadinessBoard | None = None,
    report: WorkerReport | None = None,
) -> None:
    """Run the gateway until SIGINT or SIGTERM (``housekeeping``: run the retention job; see
    ``Gateway.start`` for the readiness)."""
    gateway = Gateway(settings, housekeeping=housekeeping)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start(reuse_port=reuse_port, board=board, report=report)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
