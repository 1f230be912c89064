"""The interface every national single window adapter implements.

An adapter hands one document to one receiving party *durably*: when ``deliver`` returns, the
receiver has the document (written to its folder, answered 2xx, ...). It raises
``TemporaryFailure`` when trying again later may work and ``PermanentDeliveryFailure`` when the
receiver refused the document for good. Adapters must tolerate being handed the same message
twice (after a crash between hand-over and ack) without the receiver seeing it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from gateway.errors import GatewayError

RETRANSMISSION_REQUEST_HEADER = "X-ASW-Retransmission-Request"
"""The HTTP header marking an e-Form D sent again (OCP Rule 29(3)) with the request's message id:
written by the ``http-push`` and ``remote-gateway`` adapters, read by ``POST /v1/messages`` (a
copy forwarded by the issuing country's gateway) and on a pull-inbox fetch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """One document on its way to one receiving party."""

    message_id: str
    sender: str
    receiver: str
    document_type: str
    payload: bytes
    retransmission_request: str | None = None
    """Set when this is an e-Form D sent again (OCP Rule 29(3)): the request's message id.
    ``message_id`` and ``payload`` stay the e-Form D's own; the journal row delivered is the
    request's."""

    @property
    def journal_id(self) -> str:
        """The journal row this hand-over delivers: the request's for a re-transmission."""
        return self.retransmission_request or self.message_id


class Adapter(Protocol):
    """Hands documents to one national single window.

    ``confirms_on_pickup`` is True for an adapter whose ``deliver`` only stores the document
    for the partner to fetch (a pull inbox): the message then counts as delivered, and its
    receipt goes, when the partner acknowledges the pickup, not when ``deliver`` returns.
    """

    confirms_on_pickup: bool

    async def deliver(self, handover: Handover) -> None:
        """Hand ``handover`` over durably, or raise a ``GatewayError``."""

    async def healthy(self) -> bool:
        """Say whether the partner looks reachable right now."""

    async def close(self) -> None:
        """Release what the adapter holds."""


@runtime_checkable
class ReceiverQuery(Protocol):
    """An adapter that can ask its partner whether it already has a message.

    Asked before a document is handed over again (a broker redelivery after a crash, or a retry
    after an attempt whose outcome is unknown, such as a timeout): ``True`` means the partner
    has it and it must not be handed over twice; ``False`` or ``None`` (cannot tell) means
    deliver.
    """

    async def has_received(self, message_id: str) -> bool | None:
        """Whether the partner already holds ``message_id``; None when it cannot tell."""


class Intake(Protocol):
    """Accepts one document a party sent through an adapter (its drop-folder outbox, ...).

    Returns once the document is accepted durably, or raises the ``GatewayError`` saying why
    not (retryable ones mean: try the same document again later). The gateway passes its
    submission service's ``submit``; adapters never import it.
    """

    async def __call__(self, data: bytes, *, channel: str, caller: str | None = None) -> object:
        """Accept ``data`` sent by ``caller`` over ``channel``."""


class RefusalLog(Protocol):
    """Journals a document an adapter refused before it reached ``Intake`` (an unsafe or
    oversized file): the gateway passes its submission service's ``record_refusal``.

    Never raises: a refusal must stay a refusal even when it cannot be journalled.
    """

    async def __call__(
        self,
        error: GatewayError,
        data: bytes | None,
        *,
        channel: str,
        caller: str | None,
    ) -> object:
        """Journal that ``caller``'s document over ``channel`` was refused with ``error``."""


class InboxStore(Protocol):
    """Where a pull-inbox adapter puts a document for its partner to fetch (the journal)."""

    async def inbox_store(
        self,
        message_id: str,
        *,
        receiver: str,
        at: datetime,
        retransmission_of: str | None = None,
    ) -> bool:
        """Put a journalled message in ``receiver``'s inbox; False if it was there already.

        With ``retransmission_of``, ``message_id`` is a re-transmission request and the entry
        hands over the e-Form D of that id (OCP Rule 29(3))."""
