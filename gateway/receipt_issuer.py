"""Issuing delivery receipts: after a hand-over, tell the sender, signed by the receiving side.

The receipt is built by the pure ``gateway.core.receipts``, signed with the receiving country's
gateway key, and submitted through the same path as every other document, so it is journalled,
routed back to the sender, delivered by the sender's adapter and linked to the original. Only
this path may issue a receipt in the name of a party connected to this gateway
(``gateway.core.receipts.authorise_reference``).

Every hand-over ends here, receipt or not: where no new receipt links the delivered message,
``settle_links`` takes up a receipt or answer linked while the delivery was still under way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog
from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.handover import Handover
from gateway.core.receipts import build_receipt
from gateway.core.signatures import SigningKey
from gateway.errors import MessageIdReused
from gateway.submission import Submissions, settle_links

log = structlog.get_logger("gateway.receipt_issuer")


class ReceiptIssuer:
    """Signs and submits a receipt for each delivered document (never for a receipt)."""

    def __init__(self, submissions: Submissions, keys: Mapping[str, SigningKey]) -> None:
        self._submissions = submissions
        self._keys = keys
        self._journal = submissions.journal

    def issues_for(self, handover: Handover) -> bool:
        """Whether a receipt is due: not for receipts, and only where the receiver has a key."""
        return (
            handover.document_type != DocumentType.DELIVERY_RECEIPT.value
            and handover.receiver in self._keys
        )

    async def issue(self, handover: Handover, *, delivered_at: datetime) -> None:
        """Submit the receipt of ``handover``; safe to call again for the same message.

        Raises ``TemporaryFailure`` when it cannot be accepted now; the caller retries.
        """
        if handover.document_type == DocumentType.DELIVERY_RECEIPT.value:
            return  # a receipt is neither receipted nor answered: nothing to settle either
        if not self.issues_for(handover):
            await settle_links(self._journal, handover.message_id, at=delivered_at)
            return
        receipt = build_receipt(
            received_message_id=handover.message_id,
            received_document_type=handover.document_type,
            received_payload=handover.payload,
            receiver=handover.receiver,
            original_sender=handover.sender,
            received_at=delivered_at,
        )
        data = etree.tostring(receipt, xml_declaration=True, encoding="UTF-8")
        try:
            # Validated, then signed with the receiving gateway's key inside the pipeline: a
            # document the gateway has just built needs no signature check of its own.
            submitted = await self._submissions.submit(
                data, channel="receipt", sign_with=self._keys[handover.receiver]
            )
        except MessageIdReused:
            # Issued before with another (ECDSA, randomised) signature: already there.
            log.info("receipt_already_issued", message_id=handover.message_id)
        else:
            if not submitted.resubmitted:
                return  # the new receipt's link moved the message on
        # The receipt was there before this delivery was recorded (a pickup acknowledged
        # while a retry was pending, say): its link is old, so settle it now.
        await settle_links(self._journal, handover.message_id, at=delivered_at)
