"""Who may ask for an e-Form D again, and whether the gateway serves it itself (Rule 29(3))."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.envelope import DocumentType, Envelope, FunctionCode, Party
from gateway.core.receipts import Original
from gateway.core.retransmission import Forward, Redeliver, decide_retransmission
from gateway.errors import RetransmissionNotAllowed

FORM_D = Original(message_id="f-1", sender="SG", receiver="TH", document_type="EFD")


def _request(sender: str = "TH", receiver: str = "SG") -> Envelope:
    return Envelope(
        message_id="r-1",
        sender=Party(country=sender),
        receiver=Party(country=receiver),
        document_type=DocumentType.RETRANSMISSION_REQUEST,
        function=FunctionCode.ORIGINAL,
        created=datetime(2026, 11, 24, tzinfo=UTC),
        referenced_message_id="f-1",
        test=False,
    )


def test_the_receiver_gets_a_journalled_form_d_from_the_gateway() -> None:
    """The e-Form D's receiver, asking its sender, with the bytes held: re-delivered here."""
    decision = decide_retransmission(_request(), FORM_D, payload_held=True)
    assert decision == Redeliver(original_message_id="f-1", requester="TH")


def test_a_purged_or_unknown_form_d_is_asked_of_the_issuing_nsw() -> None:
    """No bytes (purged) or no row at all: the request is forwarded."""
    assert decide_retransmission(_request(), FORM_D, payload_held=False) == Forward()
    assert decide_retransmission(_request(), None, payload_held=False) == Forward()


@pytest.mark.parametrize(
    ("sender", "receiver", "document_type", "says"),
    [
        ("MY", "SG", "EFD", "only TH may ask"),
        ("TH", "MY", "EFD", "must be addressed to SG"),
        ("TH", "SG", "ACDD", "only an e-Form D"),
    ],
)
def test_anyone_else_is_refused(sender: str, receiver: str, document_type: str, says: str) -> None:
    """Another requester, another addressee or a document that is no e-Form D: 403."""
    original = Original(message_id="f-1", sender="SG", receiver="TH", document_type=document_type)
    with pytest.raises(RetransmissionNotAllowed, match=says) as caught:
        decide_retransmission(_request(sender, receiver), original, payload_held=True)
    assert caught.value.code == "retransmission-not-allowed"
    assert caught.value.http_status == 403
