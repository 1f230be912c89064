"""The AMQP headers a document carries through RabbitMQ, in one typed place.

Ingest writes the header facts the delivery side reads (sender, receiver, document type...);
the delivery side adds the attempt count and the retry step on the way to a retry queue, and
the reason, last error and original route on the way to the dead letters. Operators' tools read
the dead letters' headers, so the wire names below are a stable interface.

``from_amqp`` reads a broker's header table; ``to_amqp`` writes one. Headers that are not the
gateway's (RabbitMQ's ``x-first-death-*``, for instance) are carried through unchanged as long
as AMQP tables carry them as-is (text, integers, flags); a gateway header whose value has the
wrong type is dropped rather than trusted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

HeaderValue = str | int | bool
"""The values an AMQP header table carries as-is and the gateway writes."""

DETAIL_LIMIT: Final = 500
"""Longest error detail written into a header (the full text is in the journal and logs)."""

SENDER: Final = "x-asw-sender"
RECEIVER: Final = "x-asw-receiver"
DOCUMENT_TYPE: Final = "x-asw-document-type"
FUNCTION: Final = "x-asw-function"
TEST: Final = "x-asw-test"
DIGEST: Final = "x-asw-digest"
CHANNEL: Final = "x-asw-channel"
REPLAY_COUNT: Final = "x-asw-replay-count"
ATTEMPT: Final = "x-asw-attempt"
# Headers-exchange bindings ignore argument names starting with "x-", so this one must not.
RETRY_DELAY: Final = "asw-retry-delay-ms"
LAST_ERROR: Final = "x-asw-last-error"
LAST_DETAIL: Final = "x-asw-last-detail"
REASON: Final = "x-asw-reason"
DETAIL: Final = "x-asw-detail"
ORIGINAL_ROUTING_KEY: Final = "x-asw-original-routing-key"
RETRANSMISSION_OF: Final = "x-asw-retransmission-of"
"""On a re-transmission (OCP Rule 29(3)): the e-Form D's message id; the AMQP message id is
the request's, whose journal row the delivery claims."""
RETRANSMISSION_RELAYED_BY: Final = "x-asw-retransmission-relayed-by"
"""On a re-transmission forwarded here by the issuing country's gateway (federation): that
country. The request's journal row is that gateway's, not this one's: the delivery hands the
e-Form D over (its bytes checked against this journal's) and records no state."""
HANDED_OVER: Final = "x-asw-handed-over"
"""When (ISO 8601) the receiver got this document; set on a retry copy whose DELIVERED could not
be recorded, so that the copy is only recorded, never handed over again."""
DELIVERY_COUNT: Final = "x-delivery-count"
"""Set by a quorum queue: deliveries of this message that ended without a settle."""

_EMPTY: Mapping[str, HeaderValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageHeaders:
    """The x-asw-* headers of one message; None means the header is absent."""

    sender: str | None = None
    receiver: str | None = None
    document_type: str | None = None
    function: str | None = None
    test: bool | None = None
    digest: str | None = None
    channel: str | None = None
    replay_count: int | None = None
    attempt: int | None = None
    retry_delay_ms: int | None = None
    last_error: str | None = None
    last_detail: str | None = None
    reason: str | None = None
    detail: str | None = None
    original_routing_key: str | None = None
    retransmission_of: str | None = None
    retransmission_relayed_by: str | None = None
    handed_over: str | None = None
    delivery_count: int | None = None
    others: Mapping[str, HeaderValue] = field(default_factory=lambda: _EMPTY)
    """Headers that are not the gateway's, carried through as they came."""

    @classmethod
    def from_amqp(cls, table: Mapping[str, object] | None) -> MessageHeaders:
        """Read a broker's header table (None: no headers at all)."""
        known: dict[str, object] = {}
        others: dict[str, HeaderValue] = {}
        for name, value in (table or {}).items():
            attribute = _ATTRIBUTES.get(name)
            if attribute is None:
                if isinstance(value, str | int | bool):
                    others[name] = value
            elif _typed(value, _TYPES.get(attribute, str)):
                known[attribute] = value
        return cls(**known, others=MappingProxyType(others))  # type: ignore[arg-type]

    def to_amqp(self) -> dict[str, HeaderValue]:
        """The header table to publish: the others first, then every header that is set."""
        table: dict[str, HeaderValue] = dict(self.others)
        for name, attribute in _ATTRIBUTES.items():
            value = getattr(self, attribute)
            if value is not None:
                table[name] = value
        return table

    def for_retry(
        self,
        *,
        attempt: int,
        delay_ms: int,
        error_code: str,
        error_detail: str,
        handed_over: str | None = None,
    ) -> MessageHeaders:
        """These headers on the way to the retry step of ``delay_ms`` for ``attempt``.

        ``handed_over`` (when the receiver got it) marks a copy that is only to be recorded; a
        copy marked before keeps its mark.
        """
        return dataclasses.replace(
            self,
            handed_over=handed_over or self.handed_over,
            attempt=attempt,
            retry_delay_ms=delay_ms,
            last_error=error_code,
            last_detail=error_detail[:DETAIL_LIMIT],
        )

    def for_dead_letter(
        self,
        *,
        reason: str,
        detail: str,
        routing_key: str,
        attempt: int,
        last_error: str,
    ) -> MessageHeaders:
        """These headers on the way to the dead letters (no retry step any more)."""
        return dataclasses.replace(
            self,
            reason=reason,
            detail=detail[:DETAIL_LIMIT],
            original_routing_key=routing_key,
            attempt=attempt,
            last_error=last_error,
            retry_delay_ms=None,
        )


_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType(
    {
        SENDER: "sender",
        RECEIVER: "receiver",
        DOCUMENT_TYPE: "document_type",
        FUNCTION: "function",
        TEST: "test",
        DIGEST: "digest",
        CHANNEL: "channel",
        REPLAY_COUNT: "replay_count",
        ATTEMPT: "attempt",
        RETRY_DELAY: "retry_delay_ms",
        LAST_ERROR: "last_error",
        LAST_DETAIL: "last_detail",
        REASON: "reason",
        DETAIL: "detail",
        ORIGINAL_ROUTING_KEY: "original_routing_key",
        RETRANSMISSION_OF: "retransmission_of",
        RETRANSMISSION_RELAYED_BY: "retransmission_relayed_by",
        HANDED_OVER: "handed_over",
        DELIVERY_COUNT: "delivery_count",
    }
)
"""Wire name to attribute, for every header the gateway reads or writes."""

_TYPES: Final[Mapping[str, type]] = MappingProxyType(  # every other header is text
    {
        "test": bool,
        "replay_count": int,
        "attempt": int,
        "retry_delay_ms": int,
        "delivery_count": int,
    }
)


def _typed(value: object, expected: type) -> bool:
    """Whether ``value`` has the ``expected`` type (a flag is no number)."""
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
