"""The interface every national single window adapter implements.

An adapter hands one document to one receiving party *durably*: when ``deliver`` returns, the
receiver has the document (written to its folder, answered 2xx, ...). It raises
``TemporaryFailure`` when trying again later may work and ``PermanentDeliveryFailure`` when the
receiver refused the document for good. Adapters must tolerate being handed the same message
twice (after a crash between hand-over and ack) without the receiver seeing it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """One document on its way to one receiving party."""

    message_id: str
    sender: str
    receiver: str
    document_type: str
    payload: bytes


class Adapter(Protocol):
    """Hands documents to one national single window."""

    async def deliver(self, handover: Handover) -> None:
        """Hand ``handover`` over durably, or raise a ``GatewayError``."""

    async def healthy(self) -> bool:
        """Say whether the partner looks reachable right now."""

    async def close(self) -> None:
        """Release what the adapter holds."""
