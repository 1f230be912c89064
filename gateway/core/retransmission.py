"""Re-transmission of an e-Form D (OCP Rule 29(3)): who may ask, and what the gateway does.

The receiving Member State may ask the issuing Member State to send an e-Form D again. The
request names the message in its header's ReferencedMessageID. The decision here is pure:

- the request must come from the Member State the e-Form D was sent to, and go to the one that
  sent it, and name an e-Form D (``retransmission-not-allowed`` otherwise);
- where the journal still holds the e-Form D's bytes, the gateway re-delivers them itself
  (``Redeliver``): the same message id and bytes, marked as a re-transmission, with no new
  journal row for the e-Form D; the request's own journal row records that it was served;
- where it does not (unknown here, or purged), the request is routed to the issuing NSW like any
  other document (``Forward``), and the e-Form D it sends again is linked to the request.

Between gateways (federation) the issuing side's gateway forwards its re-delivered copy marked
with the request's id (``X-ASW-Retransmission-Request``). The receiving gateway decides on it
with ``decide_marked_copy``: only the issuing country's gateway may send one, and only the very
bytes journalled here under that message id are re-delivered (``Relay``), again with no new row.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.envelope import DocumentType, Envelope
from gateway.core.receipts import Original
from gateway.errors import RetransmissionMismatch, RetransmissionNotAllowed

RELATION_REQUEST = "retransmission-request"
"""Link relation: the request is the ``retransmission-request`` of the e-Form D it names."""
RELATION_RESENT = "retransmitted"
"""Link relation: the e-Form D sent again by the issuing NSW is what the request got back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Redeliver:
    """The gateway holds the document: re-deliver it to ``requester`` itself."""

    original_message_id: str
    requester: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """The gateway does not hold the document: route the request to the issuing NSW."""


def decide_retransmission(
    envelope: Envelope, original: Original | None, *, payload_held: bool
) -> Redeliver | Forward:
    """What to do with a re-transmission request, or raise ``RetransmissionNotAllowed``.

    ``original`` is the named message as journalled here (None when unknown); ``payload_held``
    whether the journal still has its bytes.
    """
    if original is None:
        return Forward()
    requester, addressee = envelope.sender.country, envelope.receiver.country
    ref = original.message_id
    if original.document_type != DocumentType.FORM_D.value:
        raise RetransmissionNotAllowed(
            f"Message {ref} is not an e-Form D ({original.document_type}); only an e-Form D "
            "can be asked for again (Rule 29(3))."
        )
    if original.receiver != requester:
        raise RetransmissionNotAllowed(
            f"Message {ref} was sent to {original.receiver}, so only {original.receiver} may "
            f"ask for it again; this request comes from {requester}."
        )
    if original.sender != addressee:
        raise RetransmissionNotAllowed(
            f"Message {ref} was issued by {original.sender}; the request must be addressed "
            f"to {original.sender}, not {addressee}."
        )
    if not payload_held:
        return Forward()
    return Redeliver(original_message_id=ref, requester=requester)


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    """A marked copy of an e-Form D held here: re-deliver the journalled bytes to ``receiver``."""

    original_message_id: str
    receiver: str
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkedCopy:
    """A document that arrived marked as the re-transmission of ``request_id``."""

    request_id: str
    caller: str | None
    """The authenticated party that sent it (None: nobody authenticated)."""
    caller_is_gateway: bool
    """Whether that party is reached through its own gateway here (``remote-gateway``)."""
    digest: str
    """SHA-256 of the bytes that arrived."""


def decide_marked_copy(
    envelope: Envelope, copy: MarkedCopy, held: Original | None, *, held_digest: str | None
) -> Relay | None:
    """What to do with a copy marked as a re-transmission, or raise why it is refused.

    ``held`` is the journalled message of the copy's message id (None when unknown here: the
    copy is then an ordinary first arrival, None is returned). Raises
    ``RetransmissionNotAllowed`` for anything but an e-Form D, or a copy not sent by the
    issuing country's gateway (authenticated as the e-Form D's sender, reached here through
    ``remote-gateway``), and ``RetransmissionMismatch`` when its bytes differ from the journal's.
    """
    ref = envelope.message_id
    if envelope.document_type is not DocumentType.FORM_D:
        raise RetransmissionNotAllowed(
            f"Only an e-Form D is re-transmitted (Rule 29(3)); message {ref} is a "
            f"{envelope.document_type.value}."
        )
    if held is None:
        return None
    if copy.caller is None or copy.caller != held.sender or not copy.caller_is_gateway:
        who = copy.caller or "an unauthenticated caller"
        raise RetransmissionNotAllowed(
            f"Message {ref} was issued by {held.sender}; only {held.sender}'s gateway may forward "
            f"it again as a re-transmission, not {who}."
        )
    if held_digest != copy.digest:
        raise RetransmissionMismatch(
            f"The copy of message {ref} marked as re-transmitted on request {copy.request_id} "
            "differs from the e-Form D this gateway accepted under that id; a re-transmission "
            "is the same document, unchanged."
        )
    return Relay(original_message_id=ref, receiver=held.receiver, request_id=copy.request_id)
