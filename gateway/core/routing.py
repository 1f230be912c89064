"""Routing decisions: which queue a message goes to, from its header alone."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.envelope import Envelope
from gateway.core.topology import Topology
from gateway.errors import UnknownRoute


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where one message is published."""

    exchange: str
    routing_key: str
    queue: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTable:
    """The receivers this gateway can deliver to."""

    topology: Topology
    receivers: frozenset[str]

    def decide(self, envelope: Envelope) -> Route:
        """Pick the route for ``envelope``, or refuse a receiver nobody serves."""
        country = envelope.receiver.country
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
