"""Rules for the documents that answer another: the Customs Response (Box 4 of the Form D, or
the ACDD's fate) and the Delivery receipt."""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Iterator
from datetime import datetime
from typing import Final

from lxml import etree

from gateway.core.envelope import NS_RECEIPT, NS_RESPONSE
from gateway.core.rule_catalogue import (
    DIGEST_LENGTH,
    DIGEST_LENGTHS,
    PARTIAL_ITEMS,
    RECEIPT_REFERENCE,
    REJECTION_REASON,
    STATUS_PARTIALLY_UTILISED,
    STATUS_REJECTED,
)
from gateway.core.rules.common import Header, clark_path, future_datetime, text
from gateway.errors import Finding

# --- Customs Response -------------------------------------------------------------------------

_RESPONSE: Final = clark_path(NS_RESPONSE, "Response")
_RESPONSE_ISSUED: Final = clark_path(NS_RESPONSE, "IssueDateTime")
_STATUS: Final = clark_path(NS_RESPONSE, "Status/NameCode")
_ERROR: Final = clark_path(NS_RESPONSE, "Error")
_ITEM: Final = clark_path(NS_RESPONSE, "GovernmentAgencyGoodsItem")
_ITEM_SEQ: Final = clark_path(NS_RESPONSE, "SequenceNumeric")


def response_rules(root: etree._Element, now: datetime) -> Iterator[Finding]:
    """Every Customs Response rule over an XSD-valid ``root``."""
    response = root.find(_RESPONSE)
    assert response is not None  # noqa: S101
    yield from future_datetime(response.find(_RESPONSE_ISSUED), "response date-time", now)
    items = response.findall(_ITEM)
    status = text(response.find(_STATUS))
    if status == STATUS_REJECTED and response.find(_ERROR) is None:
        yield REJECTION_REASON.finding(
            response,
            "the document is REJECTED but no reason is given.",
            "Add an Error with a reason code and a "
            "description the exporter can act on (Rule 30(3)).",
        )
    if status == STATUS_PARTIALLY_UTILISED and not items:
        yield PARTIAL_ITEMS.finding(
            response,
            "the document is PARTIALLY_UTILISED but no goods item has a status.",
            "Give the status of each goods item.",
        )
    for item_el in items:
        if text(item_el.find(_STATUS)) == STATUS_REJECTED and item_el.find(_ERROR) is None:
            yield REJECTION_REASON.finding(
                item_el,
                "the item is REJECTED but no reason is given.",
                "Add an Error to the item with the reason for refusing preference.",
                item=text(item_el.find(_ITEM_SEQ)),
            )


# --- Delivery receipt -------------------------------------------------------------------------

_RECEIPT: Final = clark_path(NS_RECEIPT, "Receipt")
_RECEIVED_AT: Final = clark_path(NS_RECEIPT, "ReceivedDateTime")
_RECEIVED_ID: Final = clark_path(NS_RECEIPT, "ReceivedMessageID")
_DIGEST_VALUE: Final = clark_path(NS_RECEIPT, "Digest/Value")
_DIGEST_ALGORITHM: Final = clark_path(NS_RECEIPT, "Digest/AlgorithmURI")


def receipt_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """Every Delivery receipt rule over an XSD-valid ``root`` whose header is ``h``."""
    receipt = root.find(_RECEIPT)
    assert receipt is not None  # noqa: S101
    yield from future_datetime(receipt.find(_RECEIVED_AT), "time of receipt", now)
    received = receipt.find(_RECEIVED_ID)
    if h.referenced is not None and text(h.referenced).lower() != text(received).lower():
        yield RECEIPT_REFERENCE.finding(
            received,
            f"the receipt acknowledges message "
            f"{text(received)} but the header refers to "
            f"{text(h.referenced)}.",
            "Both must name the message that was received.",
        )
    value_el = receipt.find(_DIGEST_VALUE)
    expected = DIGEST_LENGTHS[text(receipt.find(_DIGEST_ALGORITHM))]
    try:
        length = len(b64decode("".join(text(value_el).split()), validate=True))
    except (binascii.Error, ValueError):
        length = -1
    if length != expected:
        yield DIGEST_LENGTH.finding(
            value_el,
            f"the digest value is {max(length, 0)} bytes long; "
            f"the algorithm produces {expected} bytes.",
            "Give the base64 of the digest of the received bytes.",
        )
