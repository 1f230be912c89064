"""The origin conversations after an e-Form D: who may send each step, and what it links to.

Each step is a document type whose header's ReferencedMessageID names the message it follows
(OCP Rules 13, 18, 19, 30):

    e-Form D or Origin Declaration --rejection--> RejectionNotice --clarification--> Clarification
    e-Form D --retroactive-check-request--> RetroactiveCheckRequest
             RetroactiveCheckRequest --retroactive-check-reply--> RetroactiveCheckReply
    e-Form D --verification-visit-request--> VerificationVisitRequest
             VerificationVisitRequest --verification-visit-consent--> Consent
             VerificationVisitRequest --verification-visit-result--> Result
    CE lookup request --ce-lookup-response--> CE lookup response
    AEO status query --aeo-status-response--> AEO status response
    RetroactiveCheckRequest or VerificationVisitRequest --origin-determination--> Determination

A step goes between the two Member States of the message it follows: sent by the party that
received it (``by="receiver"``: a rejection, a request, a reply) or by the party that sent it
(``by="sender"``: the visit's result and the origin determination come from the Member State
that asked for the check or visit), and addressed to the other. The origin determination ends
the check or visit (Rules 18, 19: the importing customs decides, per item, whether preference is
granted), so it is what meets the whole-check and whole-visit limits. Anything else is refused
with ``reply-not-allowed`` before it is journalled. A step that names a message this journal
does not know is accepted unlinked (the conversation may have started before this gateway's
retention window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.core.envelope import DocumentType, Envelope
from gateway.core.receipts import Original
from gateway.core.register_queries import RELATION_AEO_QUERY, RELATION_CE_LOOKUP
from gateway.errors import ReplyNotAllowed

Doc = DocumentType

# The OCP's time limits, in days.
REJECTION_DAYS: Final = 60
"""Rules 13(3), 30: a rejected e-Form D or Origin Declaration is returned within 60 days
of its receipt."""
RETRO_REPLY_DAYS: Final = 90
"""Rule 18: the issuing side replies to a retroactive check within 90 days of the request."""
RETRO_WHOLE_DAYS: Final = 180
"""Rule 18: the whole retroactive check, up to the importing side's determination, takes at most
180 days."""
VISIT_CONSENT_DAYS: Final = 30
"""Rule 19: the exporter's consent to a verification visit within 30 days of the request."""
VISIT_DAYS: Final = 60
"""Rule 19: the visit within 60 days of the consent."""
VISIT_WHOLE_DAYS: Final = 180
"""Rule 19: the whole visit process, up to the importing side's determination, takes at most
180 days."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of a conversation: what it follows, how it is linked, who sends it."""

    follows: frozenset[DocumentType]
    relation: str
    by: Literal["receiver", "sender"] = "receiver"


STEPS: Final[dict[DocumentType, Step]] = {
    Doc.REJECTION_NOTICE: Step(
        follows=frozenset({Doc.FORM_D, Doc.ORIGIN_DECLARATION}), relation="rejection"
    ),
    Doc.CLARIFICATION: Step(follows=frozenset({Doc.REJECTION_NOTICE}), relation="clarification"),
    Doc.RETRO_CHECK_REQUEST: Step(
        follows=frozenset({Doc.FORM_D}), relation="retroactive-check-request"
    ),
    Doc.RETRO_CHECK_REPLY: Step(
        follows=frozenset({Doc.RETRO_CHECK_REQUEST}), relation="retroactive-check-reply"
    ),
    Doc.VISIT_REQUEST: Step(follows=frozenset({Doc.FORM_D}), relation="verification-visit-request"),
    Doc.VISIT_CONSENT: Step(
        follows=frozenset({Doc.VISIT_REQUEST}), relation="verification-visit-consent"
    ),
    Doc.VISIT_RESULT: Step(
        follows=frozenset({Doc.VISIT_REQUEST}), relation="verification-visit-result", by="sender"
    ),
    # Register lookups (gateway.core.register_queries): the register's keeper answers.
    Doc.CE_LOOKUP_RESPONSE: Step(
        follows=frozenset({Doc.CE_LOOKUP_REQUEST}), relation=RELATION_CE_LOOKUP
    ),
    Doc.AEO_STATUS_RESPONSE: Step(
        follows=frozenset({Doc.AEO_STATUS_QUERY}), relation=RELATION_AEO_QUERY
    ),
    Doc.ORIGIN_DETERMINATION: Step(
        follows=frozenset({Doc.RETRO_CHECK_REQUEST, Doc.VISIT_REQUEST}),
        relation="origin-determination",
        by="sender",
    ),
}

_NAMES: Final = {
    Doc.FORM_D: "an e-Form D",
    Doc.ORIGIN_DECLARATION: "an Origin Declaration",
    Doc.REJECTION_NOTICE: "a rejection notice",
    Doc.CLARIFICATION: "a clarification",
    Doc.RETRO_CHECK_REQUEST: "a retroactive check request",
    Doc.RETRO_CHECK_REPLY: "a retroactive check reply",
    Doc.VISIT_REQUEST: "a verification visit request",
    Doc.VISIT_CONSENT: "a verification visit consent",
    Doc.VISIT_RESULT: "a verification visit result",
    Doc.CE_LOOKUP_REQUEST: "a certified-exporter lookup request",
    Doc.CE_LOOKUP_RESPONSE: "a certified-exporter lookup response",
    Doc.AEO_STATUS_QUERY: "an AEO status query",
    Doc.AEO_STATUS_RESPONSE: "an AEO status response",
    Doc.ORIGIN_DETERMINATION: "an origin determination",
}


def authorise_step(envelope: Envelope, followed: Original | None) -> Step | None:
    """The step ``envelope`` is, once its sender may send it after ``followed``; else raise.

    None for document types that are no conversation step. ``followed`` is the referenced
    message as journalled here (None when unknown: accepted unlinked).
    """
    step = STEPS.get(envelope.document_type)
    if step is None or followed is None:
        return step
    this = _NAMES[envelope.document_type]
    ref = followed.message_id
    try:
        followed_type = DocumentType(followed.document_type)
    except ValueError:
        followed_type = None
    if followed_type not in step.follows:
        wanted = " or ".join(sorted(_NAMES[t] for t in step.follows))
        raise ReplyNotAllowed(
            f"Message {ref} is a {followed.document_type} document; {this} follows {wanted}."
        )
    party, other = (
        (followed.receiver, followed.sender)
        if step.by == "receiver"
        else (followed.sender, followed.receiver)
    )
    sender, receiver = envelope.sender.country, envelope.receiver.country
    if sender != party:
        raise ReplyNotAllowed(
            f"Only {party}, the party asked in message {ref}, may send {this} about it; this "
            f"one comes from {sender}."
        )
    if receiver != other:
        raise ReplyNotAllowed(
            f"{this[0].upper()}{this[1:]} about message {ref} goes to {other}, not {receiver}."
        )
    return step
