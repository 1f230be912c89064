"""Who may ask for an e-Form D again, and whether the gateway serves it itself (Rule 29(3))."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.envelope import DocumentType, Envelope, FunctionCode, Party
from gateway.core.receipts import Original
from gateway.core.retransmission import (
    Forward,
    MarkedCopy,
    Redeliver,
    Relay,
    decide_marked_copy,
    decide_retransmission,
)
from gateway.errors import RetransmissionMismatch, RetransmissionNotAllowed

FORM_D = Original(message_id="f-1", sender="SG", receiver="TH", document_type="EFD")


def _request(sender: str = "TH", receiver: str = "SG") -> Envelope:
    return _envelope("r-1", sender, receiver, DocumentType.RETRANSMISSION_REQUEST, ref="f-1")


def _envelope(
    message_id: str, sender: str, receiver: str, document_type: DocumentType, ref: str | None
) -> Envelope:
    return Envelope(
        message_id=message_id,
        sender=Party(country=sender),
        receiver=Party(country=receiver),
        document_type=document_type,
        function=FunctionCode.ORIGINAL,
        created=datetime(2026, 11, 24, tzinfo=UTC),
        referenced_message_id=ref,
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


FORWARDED = _envelope("f-1", "SG", "TH", DocumentType.FORM_D, ref=None)


def _copy(caller: str | None = "SG", *, gateway: bool = True, digest: str = "d1") -> MarkedCopy:
    return MarkedCopy(request_id="r-1", caller=caller, caller_is_gateway=gateway, digest=digest)


def test_marked_copy_from_the_issuing_gateway_is_relayed_to_the_receiver() -> None:
    """The issuer's gateway forwards the journalled bytes again: re-delivered to TH here."""
    decision = decide_marked_copy(FORWARDED, _copy(), FORM_D, held_digest="d1")
    assert decision == Relay(original_message_id="f-1", receiver="TH", request_id="r-1")


def test_marked_copy_of_a_message_not_held_here_is_an_ordinary_arrival() -> None:
    """Unknown here: nothing to compare with, the copy is accepted like a first one."""
    assert decide_marked_copy(FORWARDED, _copy(), None, held_digest=None) is None


@pytest.mark.parametrize(
    ("copy", "says"),
    [
        (_copy(None), "not an unauthenticated caller"),
        (_copy("MY"), "not MY"),
        (_copy("SG", gateway=False), "only SG's gateway"),
    ],
)
def test_marked_copy_from_anyone_but_the_issuing_gateway_is_refused(
    copy: MarkedCopy, says: str
) -> None:
    """Unauthenticated, another party, or the issuer's NSW rather than its gateway: 403."""
    with pytest.raises(RetransmissionNotAllowed, match=says):
        decide_marked_copy(FORWARDED, copy, FORM_D, held_digest="d1")


def test_marked_copy_with_other_bytes_is_refused_as_a_mismatch() -> None:
    """The same message id with bytes the journal does not hold: 409 retransmission-mismatch."""
    with pytest.raises(RetransmissionMismatch) as caught:
        decide_marked_copy(FORWARDED, _copy(digest="d2"), FORM_D, held_digest="d1")
    assert (caught.value.code, caught.value.http_status) == ("retransmission-mismatch", 409)


def test_marked_copy_of_anything_but_an_e_form_d_is_refused() -> None:
    """Only an e-Form D is re-transmitted: any other document marked so is refused."""
    acdd = _envelope("a-1", "SG", "TH", DocumentType.ACDD, ref=None)
    with pytest.raises(RetransmissionNotAllowed, match="Only an e-Form D"):
        decide_marked_copy(acdd, _copy(), None, held_digest=None)
