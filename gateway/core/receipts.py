"""Delivery receipts: the receiving side's signed acknowledgement of one message.

A receipt says which message was received, what exactly (the SHA-256 digest of the bytes handed
over) and when. Its message id is derived from the received message's id, so issuing the
receipt again after a crash produces the same message id and the journal recognises it.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime

from lxml import etree

from gateway.core.envelope import NS_COMMON, NS_RECEIPT, DocumentType, FunctionCode

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
