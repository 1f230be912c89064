"""Delivery receipts and answers: who may acknowledge or answer which message.

A receipt says which message was received, what exactly (the SHA-256 digest of the bytes handed
over) and when. Its message id is derived from the received message's id, so issuing the
receipt again after a crash produces the same message id and the journal recognises it.

``authorise_reference`` decides whether a receipt or a Customs Response may refer to the
message it names (issue 12, section 2), before anything is journalled:

- A **Customs Response** may answer only a business document (not a receipt or another
  answer) that was sent *to* the response's sender, and it goes back to that document's sender.
- A **delivery receipt** is issued by the gateway that handed the document to its receiver.
  For a party connected to this gateway, that is this gateway itself (``issued_here``); any
  receipt submitted from outside in that party's name is refused. For a party reached through
  a remote gateway, the receipt must come in from there carrying its own verified signature
  (a certificate of the receiver's country; the trust check ties the two), and that signer
  must be the partner gateway's own receipt signer, pinned per partner (``ReceiptSignerPin``:
  its certificate's SHA-256 fingerprints and/or subject). Another certificate the country's CA
  vouches for (a document signer, say) is refused (``receipt-signer-mismatch``): it proves
  nothing about a delivery by the partner gateway. Either way it names a message sent *to* its
  sender, and goes back to that message's sender.
- A reference to a message this journal does not know (purged after retention, or one that
  never passed through this node in a federation) is accepted unlinked: nothing of ours
  changes, and the answer still carries its sender's verified identity.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.core.envelope import NS_COMMON, NS_RECEIPT, DocumentType, Envelope, FunctionCode
from gateway.core.trust import Signer
from gateway.errors import AnswerNotAllowed, ReceiptNotAllowed, ReceiptSignerMismatch

_RECEIPT_NAMESPACE = uuid.UUID("5b0d3f1e-6c2a-4e8b-9f47-1d2c3b4a5e6f")
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"


def receipt_message_id(received_message_id: str) -> str:
    """The message id of the receipt for ``received_message_id`` (stable across retries)."""
    return str(uuid.uuid5(_RECEIPT_NAMESPACE, f"receipt:{received_message_id.lower()}"))


def build_receipt(
    *,
    received_message_id: str,
    received_document_type: str,
    received_payload: bytes,
    receiver: str,
    original_sender: str,
    received_at: datetime,
) -> etree._Element:
    """The unsigned receipt sent by ``receiver`` back to ``original_sender``."""
    cm = f"{{{NS_COMMON}}}"
    rc = f"{{{NS_RECEIPT}}}"
    root = etree.Element(f"{rc}DeliveryReceipt", nsmap={"rc": NS_RECEIPT, "cm": NS_COMMON})
    header = etree.SubElement(root, f"{cm}MessageHeader")
    etree.SubElement(header, f"{cm}MessageID").text = receipt_message_id(received_message_id)
    sender_party = etree.SubElement(header, f"{cm}SenderParty")
    etree.SubElement(sender_party, f"{cm}CountryCode").text = receiver
    receiver_party = etree.SubElement(header, f"{cm}ReceiverParty")
    etree.SubElement(receiver_party, f"{cm}CountryCode").text = original_sender
    etree.SubElement(header, f"{cm}DocumentTypeCode").text = DocumentType.DELIVERY_RECEIPT.value
    etree.SubElement(header, f"{cm}FunctionCode").text = FunctionCode.ORIGINAL.value
    stamp = received_at.isoformat(timespec="seconds")
    etree.SubElement(header, f"{cm}CreationDateTime").text = stamp
    etree.SubElement(header, f"{cm}ReferencedMessageID").text = received_message_id
    body = etree.SubElement(root, f"{rc}Receipt")
    etree.SubElement(body, f"{rc}ReceivedMessageID").text = received_message_id
    etree.SubElement(body, f"{rc}ReceivedDocumentTypeCode").text = received_document_type
    etree.SubElement(body, f"{rc}ReceivedDateTime").text = stamp
    digest = etree.SubElement(body, f"{rc}Digest")
    etree.SubElement(digest, f"{rc}AlgorithmURI").text = SHA256_URI
    value = base64.b64encode(hashlib.sha256(received_payload).digest()).decode("ascii")
    etree.SubElement(digest, f"{rc}Value").text = value
    return root


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptSignerPin:
    """A partner gateway's own receipt signer: the SHA-256 fingerprints (lower-case hex) of its
    certificates (more than one across a key roll-over) and/or its subject (RFC 4514, as
    ``Signer.subject`` gives it). A signer matching either is the partner gateway."""

    fingerprints: frozenset[str] = frozenset()
    subject: str | None = None

    def admits(self, signer: Signer) -> bool:
        """Whether ``signer`` (already trusted for the partner's country) is the gateway's own."""
        return signer.fingerprint in self.fingerprints or (
            self.subject is not None and signer.subject == self.subject
        )

    def describe(self) -> str:
        """The pin, for a refusal's detail."""
        named = [f"SHA-256 {f}" for f in sorted(self.fingerprints)]
        if self.subject is not None:
            named.append(f"subject {self.subject}")
        return " or ".join(named) or "nothing pinned"


@dataclass(frozen=True, slots=True, kw_only=True)
class Original:
    """What the journal knows of the message a receipt or answer refers to."""

    message_id: str
    sender: str
    receiver: str
    document_type: str


# A Customs Response answers trade documents and register updates, not replies, receipts or
# the steps of an origin conversation (issue 18 §1-§3), which have answers of their own.
_NOT_ANSWERABLE = (
    DocumentType.CUSTOMS_RESPONSE,
    DocumentType.DELIVERY_RECEIPT,
    DocumentType.RETRANSMISSION_REQUEST,
    DocumentType.REJECTION_NOTICE,
    DocumentType.CLARIFICATION,
    DocumentType.RETRO_CHECK_REQUEST,
    DocumentType.RETRO_CHECK_REPLY,
    DocumentType.VISIT_REQUEST,
    DocumentType.VISIT_CONSENT,
    DocumentType.VISIT_RESULT,
    DocumentType.CE_LOOKUP_REQUEST,
    DocumentType.CE_LOOKUP_RESPONSE,
    DocumentType.AEO_STATUS_QUERY,
    DocumentType.AEO_STATUS_RESPONSE,
    DocumentType.ORIGIN_DETERMINATION,
)
_ANSWERABLE = frozenset(t.value for t in DocumentType if t not in _NOT_ANSWERABLE)


def authorise_reference(
    envelope: Envelope,
    original: Original | None,
    *,
    issued_here: bool,
    signer: Signer | None,
    remote_gateways: Mapping[str, ReceiptSignerPin],
) -> None:
    """Refuse a receipt or Customs Response that its sender may not send; else return.

    ``original`` is the referenced message as journalled here (None when unknown);
    ``issued_here`` tells a receipt this gateway built and signed itself; ``signer`` is who
    signed the document as its sender verified it (None when unsigned, or signed by the
    gateway on its behalf); ``remote_gateways`` are the parties reached through another
    gateway, each with its gateway's pinned receipt signer. Other document types pass untouched.
    """
    doc_type = envelope.document_type
    if doc_type is DocumentType.CUSTOMS_RESPONSE:
        if original is not None:
            _check_answer(envelope, original)
    elif doc_type is DocumentType.DELIVERY_RECEIPT:
        if not issued_here:
            _check_outside_receipt(envelope, signer, remote_gateways)
        if original is not None:
            _check_receipt(envelope, original)


def _check_answer(envelope: Envelope, original: Original) -> None:
    sender, receiver = envelope.sender.country, envelope.receiver.country
    ref = original.message_id
    if original.document_type not in _ANSWERABLE:
        raise AnswerNotAllowed(
            f"Message {ref} is a {_kind(original.document_type)}, not a trade document; "
            "a Customs Response can only answer a trade document (Form D, ACDD, Origin "
            "Declaration, register update)."
        )
    if original.receiver != sender:
        raise AnswerNotAllowed(
            f"Message {ref} was sent to {original.receiver}, so only {original.receiver} may "
            f"answer it; this Customs Response comes from {sender}. Check the referenced "
            "message id."
        )
    if original.sender != receiver:
        raise AnswerNotAllowed(
            f"The answer to message {ref} must go back to its sender {original.sender}; this "
            f"Customs Response is addressed to {receiver}."
        )


def _check_outside_receipt(
    envelope: Envelope, signer: Signer | None, remote_gateways: Mapping[str, ReceiptSignerPin]
) -> None:
    sender = envelope.sender.country
    pin = remote_gateways.get(sender)
    if pin is None:
        raise ReceiptNotAllowed(
            f"Delivery receipts for {sender} are issued by this gateway itself when it hands a "
            f"document over to {sender}; a receipt submitted in {sender}'s name is not accepted."
        )
    if signer is None:
        raise ReceiptNotAllowed(
            f"A delivery receipt from {sender}'s gateway must carry that gateway's own "
            "signature; this one is unsigned."
        )
    if not pin.admits(signer):
        raise ReceiptSignerMismatch(
            f"A delivery receipt from {sender}'s gateway must be signed by that gateway's own "
            f"receipt signer ({pin.describe()}); this one is signed by {signer.subject} "
            f"(SHA-256 {signer.fingerprint}), which {sender}'s CA vouches for but which is not "
            "the gateway's pinned signer. It is not taken as proof of delivery."
        )


def _check_receipt(envelope: Envelope, original: Original) -> None:
    sender, receiver = envelope.sender.country, envelope.receiver.country
    ref = original.message_id
    if original.document_type == DocumentType.DELIVERY_RECEIPT.value:
        raise ReceiptNotAllowed(
            f"Message {ref} is itself a delivery receipt; a receipt is never receipted."
        )
    if original.receiver != sender:
        raise ReceiptNotAllowed(
            f"Message {ref} was delivered to {original.receiver}, so only the gateway that "
            f"delivered it there may send its receipt; this receipt comes from {sender}."
        )
    if original.sender != receiver:
        raise ReceiptNotAllowed(
            f"The receipt for message {ref} must go back to its sender {original.sender}; this "
            f"receipt is addressed to {receiver}."
        )


def _kind(document_type: str) -> str:
    try:
        return {
            DocumentType.CUSTOMS_RESPONSE: "Customs Response",
            DocumentType.DELIVERY_RECEIPT: "delivery receipt",
        }.get(DocumentType(document_type), document_type)
    except ValueError:
        return document_type
