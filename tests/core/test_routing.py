"""Routing decisions and topology names."""

from __future__ import annotations

import pytest

from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.parsing import parse
from gateway.core.routing import RoutingTable
from gateway.core.topology import Topology
from gateway.errors import UnknownRoute
from tests.conftest import SAMPLE_FORMD


def test_route_goes_to_the_receivers_queue() -> None:
    """A Form D for TH is published with key TH.formd and lands in asw.deliver.TH."""
    table = RoutingTable(topology=Topology("asw"), receivers=frozenset({"TH", "SG"}))
    route = table.decide(read_envelope(parse(SAMPLE_FORMD.read_bytes())))
    assert route.exchange == "asw.route"
    assert route.routing_key == "TH.formd"
    assert route.queue == "asw.deliver.TH"


def test_unserved_receiver_is_no_route() -> None:
    """A receiver without a configured party is refused with no-route."""
    table = RoutingTable(topology=Topology("asw"), receivers=frozenset({"SG"}))
    with pytest.raises(UnknownRoute, match="'TH'"):
        table.decide(read_envelope(parse(SAMPLE_FORMD.read_bytes())))


def test_binding_matches_every_document_type_of_the_country() -> None:
    """The delivery queue binding covers each document type's routing key."""
    topo = Topology("x")
    binding = topo.binding_key("VN")
    for doc_type in DocumentType:
        key = topo.routing_key("VN", doc_type)
        prefix, _, rest = key.partition(".")
        assert binding == f"{prefix}.*"
        assert rest
        assert "." not in rest
