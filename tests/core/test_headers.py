"""The typed AMQP headers: pinned wire names, reading, writing and the delivery's additions."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.core import headers as h
from gateway.core.headers import MessageHeaders

WIRE_NAMES = {
    "sender": "x-asw-sender",
    "receiver": "x-asw-receiver",
    "document_type": "x-asw-document-type",
    "function": "x-asw-function",
    "test": "x-asw-test",
    "digest": "x-asw-digest",
    "channel": "x-asw-channel",
    "replay_count": "x-asw-replay-count",
    "attempt": "x-asw-attempt",
    "retry_delay_ms": "asw-retry-delay-ms",
    "last_error": "x-asw-last-error",
    "last_detail": "x-asw-last-detail",
    "reason": "x-asw-reason",
    "detail": "x-asw-detail",
    "original_routing_key": "x-asw-original-routing-key",
    "retransmission_of": "x-asw-retransmission-of",
    "retransmission_relayed_by": "x-asw-retransmission-relayed-by",
    "handed_over": "x-asw-handed-over",
    "delivery_count": "x-delivery-count",
}

FULL = MessageHeaders(
    sender="SG",
    receiver="TH",
    document_type="EFD",
    function="9",
    test=False,
    digest="ab" * 32,
    channel="http",
    replay_count=1,
    attempt=2,
    retry_delay_ms=5000,
    last_error="peer-unavailable",
    last_detail="HTTP 503",
    reason="retries-exhausted",
    detail="Delivery failed 2 times",
    original_routing_key="TH.formd",
    retransmission_of="6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
    retransmission_relayed_by="SG",
    handed_over="2026-12-02T00:30:00+00:00",
    delivery_count=1,
)


def test_wire_names_are_pinned() -> None:
    """Every typed header is written under its stable wire name (operators' tools read them)."""
    table = FULL.to_amqp()
    assert set(table) == set(WIRE_NAMES.values())
    for attribute, name in WIRE_NAMES.items():
        assert table[name] == getattr(FULL, attribute), name


def test_every_field_has_a_wire_name() -> None:
    """No header field is left without a wire name."""
    fields = {f.name for f in dataclasses.fields(MessageHeaders)} - {"others"}
    assert fields == set(WIRE_NAMES)


def test_retry_delay_header_is_not_x_prefixed() -> None:
    """The retry step's header avoids "x-", which headers-exchange bindings ignore."""
    assert not h.RETRY_DELAY.startswith("x-")


def test_round_trip() -> None:
    """Reading a written table gives the same headers back."""
    assert MessageHeaders.from_amqp(FULL.to_amqp()) == FULL


def test_absent_headers_are_not_written() -> None:
    """Headers left unset (None) are not in the table; no headers at all reads as empty."""
    assert MessageHeaders(sender="SG").to_amqp() == {"x-asw-sender": "SG"}
    assert MessageHeaders.from_amqp(None) == MessageHeaders()
    assert MessageHeaders().to_amqp() == {}


def test_foreign_headers_are_carried_through() -> None:
    """RabbitMQ's own headers come back out as they went in; tables and floats do not."""
    table = {
        "x-first-death-reason": "delivery_limit",
        "x-custom-count": 3,
        "x-death": [{"count": 1}],
        "x-float": 1.5,
        "x-asw-sender": "SG",
    }
    read = MessageHeaders.from_amqp(table)
    assert read.sender == "SG"
    assert dict(read.others) == {"x-first-death-reason": "delivery_limit", "x-custom-count": 3}
    assert read.to_amqp() == {
        "x-first-death-reason": "delivery_limit",
        "x-custom-count": 3,
        "x-asw-sender": "SG",
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-asw-attempt", "2"),
        ("x-asw-attempt", True),
        ("x-delivery-count", 2.0),
        ("x-asw-sender", 5),
        ("x-asw-test", 1),
        ("x-asw-reason", b"poison"),
    ],
)
def test_wrongly_typed_gateway_header_is_dropped(name: str, value: object) -> None:
    """A gateway header with a value of the wrong type is neither trusted nor carried on."""
    read = MessageHeaders.from_amqp({name: value})
    assert read == MessageHeaders()
    assert read.to_amqp() == {}


def test_for_retry_sets_the_step() -> None:
    """On the way to a retry step: the next attempt, the delay, the error, its detail cut."""
    read = MessageHeaders.from_amqp({"x-asw-sender": "SG", "x-delivery-count": 1})
    retrying = read.for_retry(
        attempt=3, delay_ms=30_000, error_code="peer-timeout", error_detail="d" * 900
    )
    assert retrying.to_amqp() == {
        "x-asw-sender": "SG",
        "x-delivery-count": 1,
        "x-asw-attempt": 3,
        "asw-retry-delay-ms": 30_000,
        "x-asw-last-error": "peer-timeout",
        "x-asw-last-detail": "d" * h.DETAIL_LIMIT,
    }


def test_for_dead_letter_drops_the_retry_step() -> None:
    """On the way to the dead letters: the reason, the route, no retry step any more."""
    retried = MessageHeaders(sender="SG", attempt=2, retry_delay_ms=5000, last_detail="503")
    parked = retried.for_dead_letter(
        reason="retries-exhausted",
        detail="x" * 700,
        routing_key="TH.formd",
        attempt=3,
        last_error="peer-unavailable",
    )
    assert parked.to_amqp() == {
        "x-asw-sender": "SG",
        "x-asw-attempt": 3,
        "x-asw-last-error": "peer-unavailable",
        "x-asw-last-detail": "503",
        "x-asw-reason": "retries-exhausted",
        "x-asw-detail": "x" * h.DETAIL_LIMIT,
        "x-asw-original-routing-key": "TH.formd",
    }


def test_handed_over_mark_is_kept_through_retries() -> None:
    """A copy marked as handed over keeps its mark on every later retry step."""
    marked = MessageHeaders(sender="SG").for_retry(
        attempt=2,
        delay_ms=500,
        error_code="journal-unavailable",
        error_detail="down",
        handed_over="2026-12-02T00:30:00+00:00",
    )
    again = marked.for_retry(
        attempt=3, delay_ms=500, error_code="journal-unavailable", error_detail="down"
    )
    assert again.to_amqp()["x-asw-handed-over"] == "2026-12-02T00:30:00+00:00"
    assert (
        "x-asw-handed-over"
        not in MessageHeaders(sender="SG")
        .for_retry(attempt=2, delay_ms=500, error_code="peer-timeout", error_detail="slow")
        .to_amqp()
    )


def test_headers_are_frozen() -> None:
    """Headers cannot be changed in place; the delivery's additions make new ones."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        FULL.attempt = 3  # type: ignore[misc]
