"""Pull inbox: for national single windows behind firewalls, which fetch instead of being pushed.

``deliver()`` puts the message in the receiving party's inbox in the journal (one small row; the
journal already holds the payload) and returns once that is committed, so the delivery worker
acks RabbitMQ only when the document is durably waiting. The NSW then uses the HTTP API
(``gateway.inbox``): ``GET /v1/inbox`` lists its waiting documents, ``GET /v1/inbox/{id}``
fetches one and starts a lease of ``lease_seconds``, ``POST /v1/inbox/{id}/ack`` acknowledges
it, which is when the message counts as delivered (``mark_delivered``). A document not
acknowledged within its lease waits again; while the lease lives nobody else gets it (two
pollers never both fetch one document). A document fetched but still not acknowledged
``escalate_after_seconds`` (one day by default) after it was stored is dead-lettered with
``pickup-not-acknowledged`` (``gateway.inbox.escalate_unacknowledged``), for an operator.
A hand-over repeated after a crash finds the message already stored (or acknowledged) and does
not show it twice. A re-transmitted e-Form D (OCP Rule 29(3)) waits as an entry of its own, keyed
by the request's message id and marked ``retransmission_of`` the e-Form D (``gateway.inbox``).

The adapter receives the inbox (an ``InboxStore``, which the journal is) through its
constructor; the gateway builds it once the journal is open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.core.handover import Handover, InboxStore
from gateway.errors import SettingsError

log = structlog.get_logger("adapters.pull_inbox")

DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_ESCALATE_AFTER_SECONDS = 86400.0
_OPTIONS = frozenset({"lease_seconds", "escalate_after_seconds"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PullInboxOptions:
    """The checked ``options`` table of a party using the ``pull-inbox`` adapter."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    escalate_after_seconds: float = DEFAULT_ESCALATE_AFTER_SECONDS
    """A document fetched but not acknowledged this long after it was stored is dead-lettered."""

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> PullInboxOptions:
        """Check every option; raise one ``SettingsError`` listing every problem."""
        problems = [f"{key}: unknown option" for key in sorted(set(options) - _OPTIONS)]
        lease = _positive(options, "lease_seconds", DEFAULT_LEASE_SECONDS, problems)
        escalate = _positive(
            options, "escalate_after_seconds", DEFAULT_ESCALATE_AFTER_SECONDS, problems
        )
        if not problems and escalate <= lease:
            problems.append(
                f"escalate_after_seconds: must be longer than lease_seconds ({lease:g}), "
                f"got {escalate:g}"
            )
        if problems:
            raise SettingsError([f"pull-inbox {p}" for p in problems])
        return cls(lease_seconds=lease, escalate_after_seconds=escalate)


def _positive(options: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    """The option ``name`` as a number greater than 0 (``default`` if absent)."""
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}: expected a number, got {raw!r}")
        return default
    if not value > 0:
        problems.append(f"{name}: must be greater than 0, got {raw!r}")
    return value


class PullInboxAdapter:
    """Hands documents over by storing them in the receiving party's inbox in the journal."""

    confirms_on_pickup = True
    """``deliver`` only stores: the NSW's acknowledgement is the delivery (``gateway.inbox``
    marks the message delivered and issues the receipt then), not the return of ``deliver``."""

    def __init__(
        self,
        inbox: InboxStore,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._inbox = inbox

    @classmethod
    def from_options(cls, options: Mapping[str, str], inbox: InboxStore) -> PullInboxAdapter:
        """Build from the ``options`` table of a party's configuration."""
        return cls(inbox, lease_seconds=PullInboxOptions.parse(options).lease_seconds)

    async def deliver(self, handover: Handover) -> None:
        """Store the message in the receiver's inbox; a repeat is a no-op.

        A re-transmitted e-Form D is stored as an entry of its own, under the request's id and
        marked with the e-Form D's (``retransmission_of``): the receiver lists, fetches and
        acknowledges it apart from the e-Form D's first entry, which stays acknowledged.
        """
        resent = handover.message_id if handover.retransmission_request is not None else None
        added = await self._inbox.inbox_store(
            handover.journal_id,
            receiver=handover.receiver,
            at=self._clock(),
            retransmission_of=resent,
        )
        log.info("inbox_stored" if added else "inbox_store_repeated", receiver=handover.receiver)

    async def healthy(self) -> bool:
        """Always: the inbox is the gateway's journal (the NSW's polling is not visible here)."""
        return True

    async def close(self) -> None:
        """Nothing to release: the journal belongs to the gateway."""
