"""Routing decisions: which queue a message goes to, from its header alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.envelope import Envelope
from gateway.core.parties import Parties, default_parties
from gateway.core.topology import Topology
from gateway.errors import ReceiverNotEnabled, UnknownRoute

# The schema major version of every document type today (the namespaces end in ":1").
DOCUMENT_VERSION = "1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where one message is published."""

    exchange: str
    routing_key: str
    queue: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTable:
    """The receivers this gateway can deliver to, and who exchanges what (``parties``)."""

    topology: Topology
    receivers: frozenset[str]
    parties: Parties = field(default_factory=default_parties)

    def decide(self, envelope: Envelope) -> Route:
        """Pick the route for ``envelope``, or refuse a receiver that does not take this
        document under the parties plan (``receiver-not-enabled``) or that nobody serves on
        this gateway (``no-route``)."""
        country = envelope.receiver.country
        refusal = self.parties.refusal(
            envelope.sender.country,
            country,
            envelope.document_type,
            DOCUMENT_VERSION,
            envelope.created.date(),
        )
        if refusal is not None:
            raise ReceiverNotEnabled(refusal)
        if country not in self.receivers:
            served = ", ".join(sorted(self.receivers)) or "none"
            raise UnknownRoute(
                f"No national single window for receiver {country!r} is configured on this "
                f"gateway (it serves: {served})."
            )
        return Route(
            exchange=self.topology.route_exchange,
            routing_key=self.topology.routing_key(country, envelope.document_type),
            queue=self.topology.delivery_queue(country),
        )
