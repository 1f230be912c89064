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
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.envelope import DocumentType, Envelope
from gateway.core.receipts import Original
from gateway.errors import RetransmissionNotAllowed

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
