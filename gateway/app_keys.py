"""Every typed key of the gateway's aiohttp application, declared in this one place.

The wiring (``gateway.app``) sets them; handlers read them. No string keys: a key carries its
value's type, so ``request.app[JOURNAL]`` is a ``Journal`` to mypy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from adapters.pull_inbox import PullInboxOptions
    from gateway.audit import AuditTrail
    from gateway.broker import Broker
    from gateway.core.handover import Adapter
    from gateway.core.signatures import SigningKey
    from gateway.core.trust import TrustStore
    from gateway.journal import Journal
    from gateway.metrics import Sources
    from gateway.receipt_issuer import ReceiptIssuer
    from gateway.replay import DeadLetterReplay
    from gateway.settings import Settings
    from gateway.submission import Submissions
    from gateway.trust_loader import ReloadingTrustStore

Clock = Callable[[], datetime]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SUBMISSIONS: web.AppKey[Submissions] = web.AppKey("submissions")
JOURNAL: web.AppKey[Journal] = web.AppKey("journal")
OPERATIONS: web.AppKey[DeadLetterReplay] = web.AppKey("operations")
ADAPTERS: web.AppKey[Mapping[str, Adapter]] = web.AppKey("adapters")
TRUST: web.AppKey[Callable[[], TrustStore] | None] = web.AppKey("trust")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
INBOX_RECEIPTS: web.AppKey[ReceiptIssuer] = web.AppKey("inbox_receipts")
"""Optional: when set, an inbox acknowledgement issues the delivery receipt to the sender."""
INBOX_OPTIONS: web.AppKey[Mapping[str, PullInboxOptions]] = web.AppKey("inbox_options")
"""The checked options of every pull-inbox party, parsed once at start."""
TRUST_RELOADS: web.AppKey[ReloadingTrustStore] = web.AppKey("trust_reloads")
"""Optional: the reloading trust store, whose reload problems ``/readyz`` names."""
READINESS: web.AppKey[Callable[[], Awaitable[tuple[int, dict[str, Any]]]]] = web.AppKey("readiness")
"""What ``/readyz`` answers: under a supervisor, its one verdict over every worker."""
SOURCES: web.AppKey[Sources] = web.AppKey("metrics_sources")
"""Where the metrics endpoint reads the gateway's state from."""
AUDIT: web.AppKey[AuditTrail] = web.AppKey("audit")
"""The audit trail (operator actions, document views), over the journal's audit log."""
OWN_KEYS: web.AppKey[Mapping[str, Mapping[str, SigningKey]]] = web.AppKey("own_keys")
"""The gateway's own keys by kind (``signer``: signs for parties; ``gateway``: signs receipts)
and country, for the certificate report."""
