"""Building delivery receipts."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.receipts import build_receipt, receipt_message_id
from gateway.core.validation import Validator

XSD = Path(__file__).resolve().parents[2] / "xsd"
RECEIVED = "0b6e4a52-93c1-4f0e-a7d2-5c1e2f3a4b60"


def _receipt(payload: bytes = b"<doc/>") -> etree._Element:
    return build_receipt(
        received_message_id=RECEIVED,
        received_document_type="EFD",
        received_payload=payload,
        receiver="TH",
        original_sender="SG",
        received_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
    )


def test_receipt_is_a_valid_document_addressed_back_to_the_sender() -> None:
    """The receipt passes its schema and rules and goes from TH back to SG."""
    root = _receipt()
    report = Validator.load(XSD).check(root, now=datetime(2026, 11, 21, tzinfo=UTC))
    assert report.valid, report.findings
    envelope = read_envelope(root)
    assert envelope.document_type is DocumentType.DELIVERY_RECEIPT
    assert (envelope.sender.country, envelope.receiver.country) == ("TH", "SG")
    assert envelope.referenced_message_id == RECEIVED


def test_receipt_carries_the_digest_of_what_was_received() -> None:
    """The digest value is the base64 SHA-256 of the delivered bytes."""
    root = _receipt(b"<exact bytes/>")
    value = root.findtext(".//{urn:asw-gw:datamodel:RCT-DMS:1}Value")
    assert value == base64.b64encode(hashlib.sha256(b"<exact bytes/>").digest()).decode()


def test_receipt_id_is_stable_and_distinct_per_message() -> None:
    """The same received message always gets the same receipt id; another gets another."""
    assert receipt_message_id(RECEIVED) == receipt_message_id(RECEIVED.upper())
    assert receipt_message_id(RECEIVED) != receipt_message_id(RECEIVED[:-1] + "1")
    assert read_envelope(_receipt()).message_id == receipt_message_id(RECEIVED)
