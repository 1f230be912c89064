"""Routing decisions (the parties plan, then the served receivers) and topology names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.envelope import MEMBER_STATES, DocumentType, Envelope, read_envelope
from gateway.core.parsing import parse
from gateway.core.parties import parse_parties
from gateway.core.routing import RoutingTable
from gateway.core.topology import Topology
from gateway.core.validation import Validator
from gateway.errors import ReceiverNotEnabled, UnknownRoute
from tests.conftest import PILOT_PARTIES, SAMPLE_FORMD, SAMPLES, XSD_DIR


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


def _for(receiver: str, document: bytes = b"") -> Envelope:
    data = document or SAMPLE_FORMD.read_bytes()
    data = data.replace(
        b"<cm:ReceiverParty><cm:CountryCode>TH<",
        f"<cm:ReceiverParty><cm:CountryCode>{receiver}<".encode(),
        1,
    )
    return read_envelope(parse(data))


ACDD_PAIRS = parse_parties(PILOT_PARTIES)  # ACDD only between SG and KH


def test_default_table_takes_every_type_between_the_ten() -> None:
    """Without a plan of its own the table routes as before: the ten exchange everything."""
    table = RoutingTable(topology=Topology("asw"), receivers=frozenset(MEMBER_STATES))
    assert table.decide(_for("TH")).routing_key == "TH.formd"
    assert table.decide(_for("VN")).queue == "asw.deliver.VN"


def test_receiver_that_does_not_take_the_type_is_refused_before_queueing() -> None:
    """An ACDD for TH, where ACDD runs only between SG and KH, is receiver-not-enabled."""
    table = RoutingTable(
        topology=Topology("asw"), receivers=frozenset({"TH", "KH"}), parties=ACDD_PAIRS
    )
    acdd = (SAMPLES / "acdd" / "valid" / "sg-my-electronics.xml").read_bytes()
    acdd = acdd.replace(b"<cm:CountryCode>MY<", b"<cm:CountryCode>TH<", 1)
    with pytest.raises(ReceiverNotEnabled, match=r"Thailand \(TH\) does not take the ACDD"):
        table.decide(read_envelope(parse(acdd)))
    assert ReceiverNotEnabled.code == "receiver-not-enabled"
    assert table.decide(_for("TH")).routing_key == "TH.formd"  # e-Form D still goes


def test_timor_leste_is_refused_by_default_even_when_served() -> None:
    """TL is a member but not an ASW party by default: receiver-not-enabled, not no-route."""
    table = RoutingTable(topology=Topology("asw"), receivers=frozenset({"TH", "TL"}))
    with pytest.raises(ReceiverNotEnabled, match="Timor-Leste"):
        table.decide(_for("TL"))


def test_timor_leste_passes_validation_so_the_refusal_is_the_routing_one() -> None:
    """A Form D for TL passes the XSD and the rules (TL is a member): routing refuses it."""
    data = SAMPLE_FORMD.read_bytes()
    for old, new in (
        (b"<cm:ReceiverParty><cm:CountryCode>TH<", b"<cm:ReceiverParty><cm:CountryCode>TL<"),
        (b"<fd:CountryCode>TH</fd:CountryCode></fd:Destination>",
         b"<fd:CountryCode>TL</fd:CountryCode></fd:Destination>"),
    ):  # fmt: skip
        data = data.replace(old, new, 1)
    report = Validator.load(XSD_DIR).check(parse(data), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert report.valid, report.errors
