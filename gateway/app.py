"""Wiring: the one place that builds the gateway's parts from the settings and joins them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from adapters import build_adapter
from adapters.drop_folder import (
    DropFolderAdapter,
    FolderAccess,
    FolderIntake,
    warn_unsafe_permissions,
)
from adapters.pull_inbox import attach_journal
from gateway import metrics
from gateway.auth import auth_middleware, check_auth_exposure, server_ssl_context
from gateway.broker import Broker
from gateway.connections import ConnectionGuard, raise_open_file_limit
from gateway.console import add_console_routes
from gateway.core.handover import Adapter
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
from gateway.inbox import INBOX_RECEIPTS, add_inbox_routes, escalate_all
from gateway.journal import Journal, open_journal
from gateway.offload import RequestPool
from gateway.operations import Operations
from gateway.pki_files import read_signing_key
from gateway.receipting import ReceiptIssuer
from gateway.settings import Settings, journal_url
from gateway.submission import Submissions
from gateway.trust_loader import ReloadingTrustStore
from gateway.web import (
    ADAPTERS,
    BROKER,
    CLOCK,
    JOURNAL,
    OPERATIONS,
    SETTINGS,
    SUBMISSIONS,
    TRUST,
    add_routes,
    errors_middleware,
    health_body,
    limits_middleware,
    readiness,
    utc_now,
)

log = structlog.get_logger("gateway.app")

BROKER_GRACE_SECONDS = 3.0


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


def build_trust(settings: Settings) -> ReloadingTrustStore | None:
    """The per-country trust store, re-read when CA or CRL files change."""
    trust_dir = Path(settings.pki.trust_dir)
    if not trust_dir.is_dir():
        if settings.pki.require_signature:
            raise SettingsError(
                [
                    f"pki.trust_dir: {trust_dir} does not exist; create a development PKI with "
                    f"`asw-toolkit pki init {trust_dir}` or point ASW_PKI__TRUST_DIR at one"
                ]
            )
        return None
    return ReloadingTrustStore(
        trust_dir,
        policies={country: party.revocation for country, party in settings.parties.items()},
        check_every=settings.pki.trust_check_seconds,
    )


def build_ingest(settings: Settings) -> Ingest:
    """Compile the schemas, load signing keys and build the routing table once."""
    topology = Topology(settings.amqp.prefix)
    return Ingest(
        limits=parse_limits(settings),
        validator=Validator.load(Path(settings.documents.xsd_dir)),
        routes=RoutingTable(
            topology=topology,
            receivers=frozenset(settings.parties),
            parties=load_parties(settings.documents.parties_file),
        ),
        signers=load_signers(settings),
        require_signature=settings.pki.require_signature,
    )


def build_intakes(settings: Settings, submissions: Submissions) -> list[FolderIntake]:
    """A watched outbox for every drop-folder party that has one configured."""
    return [
        FolderIntake(
            country,
            Path(party.options["outbox"]),
            submissions,
            poll_seconds=float(party.options.get("poll_seconds", "1.0")),
            access=FolderAccess.from_options(party.options),
            max_bytes=settings.http.max_body_bytes,
        )
        for country, party in sorted(settings.parties.items())
        if party.adapter == "drop-folder" and party.options.get("outbox")
    ]


def build_adapters(settings: Settings) -> dict[str, Adapter]:
    """One adapter per configured receiving party."""
    return {
        country: build_adapter(party.adapter, party.options)
        for country, party in settings.parties.items()
    }


def request_pool(settings: Settings) -> RequestPool:
    """The bounded pool for heavy work on documents submitted over HTTP (one per worker)."""
    return RequestPool(threads=settings.http.request_threads, queue=settings.http.request_queue)


def create_app(
    settings: Settings,
    *,
    broker: Broker,
    submissions: Submissions,
    journal: Journal,
    operations: Operations,
    adapters: Mapping[str, Adapter],
    trust: Callable[[], TrustStore] | None,
    receipts: ReceiptIssuer | None = None,
    clock: Callable[[], datetime] = utc_now,
    pool: RequestPool | None = None,
) -> web.Application:
    """The aiohttp application with its dependencies under typed keys."""
    own_pool = pool is None
    pool = pool or request_pool(settings)
    app = web.Application(
        middlewares=[
            errors_middleware,
            auth_middleware(settings, trust=trust),
            limits_middleware(settings, pool),
        ],
        client_max_size=settings.http.max_body_bytes + 1,
    )
    if own_pool:

        async def close_pool(_app: web.Application) -> None:
            pool.close()

        app.on_cleanup.append(close_pool)
    app[SETTINGS] = settings
    app[SUBMISSIONS] = submissions
    app[JOURNAL] = journal
    app[OPERATIONS] = operations
    app[ADAPTERS] = adapters
    app[TRUST] = trust
    app[BROKER] = broker
    app[CLOCK] = clock
    add_routes(app)
    add_inbox_routes(app)
    add_console_routes(app)
    if receipts is not None:
        app[INBOX_RECEIPTS] = receipts
    return app


class Gateway:
    """A running gateway: HTTP API, journal, broker connection and delivery workers."""

    def __init__(self, settings: Settings, adapters: Mapping[str, Adapter] | None = None):
        check_auth_exposure(settings.http)
        self.settings = settings
        self.topology = Topology(settings.amqp.prefix)
        self.broker = Broker(settings.amqp, self.topology, frozenset(settings.parties))
        self.adapters = dict(adapters) if adapters is not None else build_adapters(settings)
        self.ingest = build_ingest(settings)
        self.trust = build_trust(settings)
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
        self.intakes: list[FolderIntake] = []
        self._intake_tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.port: int | None = None

    async def start(self, *, port: int | None = None, reuse_port: bool = False) -> None:
        """Open the journal, connect to the broker (in the background), consume and listen."""
        open_files = raise_open_file_limit()
        url = journal_url(self.settings.journal)
        journal = self.journal = metrics.timed_journal(
            await open_journal(url, op_timeout=self.settings.journal.op_timeout_seconds)
        )
        attach_journal(self.adapters.values(), journal)
        trust = self.trust
        submissions = Submissions(
            self.ingest,
            self.broker,
            journal,
            utc_now,
            trust=trust.current if trust else lambda: None,
            offload_bytes=self.settings.http.offload_bytes,
            remote_parties=frozenset(
                cc for cc, p in self.settings.parties.items() if p.adapter == "remote-gateway"
            ),
        )
        receipts = (
            ReceiptIssuer(submissions, self.receipt_keys) if self.settings.pki.receipts else None
        )
        DeliveryWorker(
            self.broker,
            self.topology,
            self.adapters,
            self.settings.amqp,
            journal=journal,
            clock=utc_now,
            lease_seconds=self.settings.journal.lease_seconds,
            trust=trust.current if trust and self.settings.pki.verify_on_delivery else None,
            limits=parse_limits(self.settings),
            offload_bytes=self.settings.http.offload_bytes,
            receipts=receipts,
        ).register()
        app = create_app(
            self.settings,
            broker=self.broker,
            submissions=submissions,
            journal=journal,
            operations=Operations(journal, self.broker, submissions, utc_now),
            adapters=self.adapters,
            trust=trust.current if trust else None,
            receipts=receipts,
        )
        metrics.mount(app, self, journal)
        self.intakes = build_intakes(self.settings, submissions)
        await self.broker.start()
        # Give the broker a moment before listening, so that a worker taking connections
        # (several share the port) can usually accept at once; when the broker is down, the
        # gateway listens anyway and answers 503 broker-unavailable until it is back.
        await self.broker.wait_connected(BROKER_GRACE_SECONDS)
        http = self.settings.http
        # keepalive_timeout is also armed when a connection opens: one that has not sent a
        # complete request by then is closed (aiohttp's web_protocol), so it is the header timeout.
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=http.header_timeout_seconds
        )
        await self._runner.setup()
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
        # Each intake supervises itself: a failing file or scan is logged and the loop goes on.
        self._intake_tasks = [
            asyncio.create_task(intake.run(), name=f"intake-{intake.country}")
            for intake in self.intakes
        ]
        self._intake_tasks.append(
            asyncio.create_task(self._sweep(submissions), name="sweep-unconfirmed")
        )
        log.info(
            "gateway_started",
            host=http.host,
            port=self.port,
            auth=http.auth,
            max_connections=http.max_connections,
            open_files=open_files,
        )

    async def _health(self, path: str) -> tuple[int, dict[str, Any]]:
        """What /healthz and /readyz answer on a connection beyond the limit (as the routes do)."""
        if path == "/readyz":
            if self.journal is None:  # the guard exists only once the journal is open
                raise RuntimeError("readiness asked before the journal was opened")
            return await readiness(self.broker, self.journal)
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
                await escalate_all(submissions.journal, self.settings, at=utc_now())
            except GatewayError as exc:
                log.warning("sweep_failed", error=exc.code, detail=exc.detail)

    async def stop(self) -> None:
        """Stop intake and listening, drain deliveries, close the broker and the journal."""
        for task in self._intake_tasks:
            task.cancel()
        await asyncio.gather(*self._intake_tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        if self.guard is not None:
            self.guard.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.broker.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        if self.journal is not None:
            await self.journal.close()
        log.info("gateway_stopped")


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start(reuse_port=reuse_port)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
