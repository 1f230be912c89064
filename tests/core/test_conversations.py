"""Who may send each step of an origin conversation (OCP Rules 13, 18, 19)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.conversations import STEPS, authorise_step
from gateway.core.envelope import DocumentType, Envelope, FunctionCode, Party
from gateway.core.receipts import Original
from gateway.errors import ReplyNotAllowed

FORM_D = Original(message_id="f-1", sender="SG", receiver="TH", document_type="EFD")
DECLARATION = Original(message_id="o-1", sender="SG", receiver="MY", document_type="OD")
VISIT = Original(message_id="v-1", sender="TH", receiver="SG", document_type="VVQ")


def _step(doc: DocumentType, sender: str, receiver: str) -> Envelope:
    return Envelope(
        message_id="s-1",
        sender=Party(country=sender),
        receiver=Party(country=receiver),
        document_type=doc,
        function=FunctionCode.ORIGINAL,
        created=datetime(2026, 11, 24, tzinfo=UTC),
        referenced_message_id="x",
        test=False,
    )


def test_the_importing_side_rejects_and_asks() -> None:
    """TH, which received SG's e-Form D, may reject it or ask for a check or a visit."""
    for doc in (
        DocumentType.REJECTION_NOTICE,
        DocumentType.RETRO_CHECK_REQUEST,
        DocumentType.VISIT_REQUEST,
    ):
        assert authorise_step(_step(doc, "TH", "SG"), FORM_D) is STEPS[doc]


def test_the_importing_side_rejects_an_origin_declaration() -> None:
    """MY, which received SG's Origin Declaration, may reject it (Rules 13(3), 30); TH may not,
    nor may MY address the rejection elsewhere, nor ask a retroactive check about it here."""
    rejection = DocumentType.REJECTION_NOTICE
    assert authorise_step(_step(rejection, "MY", "SG"), DECLARATION) is STEPS[rejection]
    with pytest.raises(ReplyNotAllowed, match="Only MY"):
        authorise_step(_step(rejection, "TH", "SG"), DECLARATION)
    with pytest.raises(ReplyNotAllowed, match="goes to SG, not TH"):
        authorise_step(_step(rejection, "MY", "TH"), DECLARATION)
    with pytest.raises(ReplyNotAllowed, match="follows an e-Form D"):
        authorise_step(_step(DocumentType.RETRO_CHECK_REQUEST, "MY", "SG"), DECLARATION)


def test_consent_from_the_party_asked_result_from_the_party_asking() -> None:
    """SG consents to TH's visit request; TH, which asked, sends the result."""
    assert authorise_step(_step(DocumentType.VISIT_CONSENT, "SG", "TH"), VISIT) is not None
    assert authorise_step(_step(DocumentType.VISIT_RESULT, "TH", "SG"), VISIT) is not None
    with pytest.raises(ReplyNotAllowed, match="Only TH"):
        authorise_step(_step(DocumentType.VISIT_RESULT, "SG", "TH"), VISIT)


@pytest.mark.parametrize(
    ("doc", "sender", "receiver", "followed", "says"),
    [
        (DocumentType.REJECTION_NOTICE, "MY", "SG", FORM_D, "Only TH"),
        (DocumentType.REJECTION_NOTICE, "TH", "MY", FORM_D, "goes to SG, not MY"),
        (DocumentType.VISIT_CONSENT, "MY", "TH", VISIT, "Only SG"),
        (DocumentType.CLARIFICATION, "SG", "TH", FORM_D, "follows a rejection notice"),
        (DocumentType.RETRO_CHECK_REPLY, "TH", "SG", FORM_D, "follows a retroactive check"),
    ],
)
def test_anyone_else_is_refused(
    doc: DocumentType, sender: str, receiver: str, followed: Original, says: str
) -> None:
    """Not the party asked, not addressed to the other party, or not after its request: 403."""
    with pytest.raises(ReplyNotAllowed, match=says) as caught:
        authorise_step(_step(doc, sender, receiver), followed)
    assert caught.value.code == "reply-not-allowed"
    assert caught.value.http_status == 403


def test_an_unknown_followed_message_passes_unlinked() -> None:
    """A step naming a message this journal does not hold is accepted (and not linked)."""
    assert authorise_step(_step(DocumentType.CLARIFICATION, "SG", "TH"), None) is not None


def test_other_documents_are_no_steps() -> None:
    """A Form D or a Customs Response is not a conversation step."""
    assert authorise_step(_step(DocumentType.FORM_D, "SG", "TH"), None) is None


def test_only_the_register_asked_answers_a_lookup() -> None:
    """A CE lookup or AEO status response comes from the party asked, to the asker, and
    follows only its own kind of query."""
    lookup = Original(message_id="q-1", sender="MY", receiver="SG", document_type="CEQ")
    aeo = Original(message_id="q-2", sender="MY", receiver="SG", document_type="AEQ")
    ce_answer, aeo_answer = DocumentType.CE_LOOKUP_RESPONSE, DocumentType.AEO_STATUS_RESPONSE
    assert authorise_step(_step(ce_answer, "SG", "MY"), lookup) is STEPS[ce_answer]
    assert authorise_step(_step(aeo_answer, "SG", "MY"), aeo) is STEPS[aeo_answer]
    with pytest.raises(ReplyNotAllowed, match="Only SG"):
        authorise_step(_step(ce_answer, "VN", "MY"), lookup)
    with pytest.raises(ReplyNotAllowed, match="goes to MY"):
        authorise_step(_step(ce_answer, "SG", "TH"), lookup)
    with pytest.raises(ReplyNotAllowed, match="follows a certified-exporter lookup request"):
        authorise_step(_step(ce_answer, "SG", "MY"), aeo)


CHECK = Original(message_id="c-1", sender="TH", receiver="SG", document_type="RCQ")


def test_only_the_party_that_asked_sends_the_determination() -> None:
    """TH, which asked for the check or visit, determines origin and tells SG; nobody else."""
    doc = DocumentType.ORIGIN_DETERMINATION
    assert authorise_step(_step(doc, "TH", "SG"), CHECK) is STEPS[doc]
    assert authorise_step(_step(doc, "TH", "SG"), VISIT) is STEPS[doc]
    with pytest.raises(ReplyNotAllowed, match="Only TH") as caught:
        authorise_step(_step(doc, "SG", "TH"), CHECK)
    assert caught.value.http_status == 403
    with pytest.raises(ReplyNotAllowed, match="goes to SG, not MY"):
        authorise_step(_step(doc, "TH", "MY"), VISIT)
    with pytest.raises(ReplyNotAllowed, match="follows a retroactive check request or a verif"):
        authorise_step(_step(doc, "TH", "SG"), FORM_D)
