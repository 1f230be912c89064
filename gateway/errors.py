"""The gateway's one error tree.

Every failure the gateway reports is a ``GatewayError``. Each class carries a stable kebab-case
``code`` (the same string in problem+json ``type``, dead-letter headers and logs), the HTTP
status a server answers with, and whether trying again later may succeed.

    GatewayError
    ├── RejectedMessage            the sender's fault: 4xx, never retried
    │   ├── PayloadTooLarge        413 payload-too-large
    │   ├── UnsupportedMediaType   415 unsupported-media-type
    │   ├── UnsafeFile             400 file-unsafe (a drop-folder link, hard link, not a file)
    │   ├── MalformedXml           400 malformed-xml
    │   ├── ForbiddenXml           400 xml-forbidden (DTD, entities, XInclude, ...)
    │   ├── XmlLimitExceeded       400 xml-limit-exceeded (depth, node size)
    │   ├── UnknownDocumentType    422 unknown-document-type
    │   ├── HeaderInvalid          422 header-invalid
    │   ├── SchemaViolation        422 schema-violation
    │   ├── BusinessRuleViolation  422 business-rule-violation
    │   ├── SignatureProblem       422 (one subclass per signature / certificate code)
    │   ├── UnknownRoute           422 no-route
    │   ├── ReceiverNotEnabled     422 receiver-not-enabled
    │   ├── SenderNotAllowed       403 sender-not-allowed
    │   ├── AnswerNotAllowed       403 answer-not-allowed
    │   ├── ReceiptNotAllowed      403 receipt-not-allowed
    │   │   └── ReceiptSignerMismatch 403 receipt-signer-mismatch (not the pinned signer)
    │   ├── RetransmissionNotAllowed 403 retransmission-not-allowed
    │   ├── RetransmissionMismatch 409 retransmission-mismatch (a marked copy, other bytes)
    │   ├── ReplyNotAllowed        403 reply-not-allowed
    │   ├── Unauthenticated        401 unauthenticated
    │   ├── RoleForbidden          403 role-forbidden (the operator's role may not do this)
    │   ├── DuplicateMessage       409 duplicate-business-key
    │   ├── MessageIdReused        409 message-id-reused
    │   ├── UnknownMessage         422 not-in-journal
    │   ├── ParameterInvalid       400 parameter-invalid (a query parameter or header)
    │   ├── ParameterForbidden     403 parameter-forbidden (a filter this caller may not use)
    │   ├── DiscardRefused         409 discard-refused (only dead letters are discarded)
    │   ├── RequestTimeout         408 request-timeout (the body arrived too slowly)
    │   └── NotFound               404 not-found
    └── TemporaryFailure           ours or a peer's: 5xx, retryable
        ├── Busy                   503 busy (this caller or worker is at its limit)
        ├── BrokerUnavailable      503 broker-unavailable
        ├── JournalUnavailable     503 journal-unavailable
        │   ├── JournalReadOnly    503 journal-read-only
        │   ├── JournalFull        503 journal-full
        │   ├── JournalReplaced    503 journal-replaced
        │   └── JournalSchemaMismatch 503 journal-schema-mismatch (run journal migrate)
        ├── PeerUnavailable        502 peer-unavailable
        │   └── FolderUnsafe       502 folder-unsafe (a drop folder is a link or not ours)
        └── PeerTimeout            504 peer-timeout
    PermanentDeliveryFailure       a receiver refused the document for good (dead letter)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem (or remark) found in a document, for a trade officer to act on."""

    severity: str  # "error" | "warning" | "info"
    code: str
    message: str
    box: str | None = None
    path: str | None = None
    line: int | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Render as the JSON object used by the API and the CLI."""
        return {
            "severity": self.severity,
            "code": self.code,
            "box": self.box,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
        }


class GatewayError(Exception):
    """Root of every error the gateway reports."""

    code: ClassVar[str] = "internal-error"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    title: ClassVar[str] = "The gateway could not process the message"

    def __init__(
        self,
        detail: str,
        *,
        findings: tuple[Finding, ...] = (),
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.findings = findings
        self.extensions = extensions or {}

    def to_problem(self, *, base_uri: str, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem details object."""
        problem: dict[str, Any] = {
            "type": f"{base_uri}{self.code}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.detail,
            "code": self.code,
            "retryable": self.retryable,
        }
        if instance is not None:
            problem["instance"] = instance
        if self.findings:
            problem["findings"] = [f.to_json() for f in self.findings]
        problem.update(self.extensions)
        return problem


# --- the sender's fault ----------------------------------------------------------------------


class RejectedMessage(GatewayError):
    """The message itself is wrong; sending it again unchanged will fail again."""

    code = "message-rejected"
    http_status = 400
    title = "The message was refused"


class PayloadTooLarge(RejectedMessage):
    """The body is larger than the configured limit."""

    code = "payload-too-large"
    http_status = 413
    title = "The message is too large"


class UnsupportedMediaType(RejectedMessage):
    """The body is not declared as XML."""

    code = "unsupported-media-type"
    http_status = 415
    title = "The message must be sent as XML"


class UnsafeFile(RejectedMessage):
    """A drop-folder entry that is not a plain file of its own (a link, a hard link, a FIFO)."""

    code = "file-unsafe"
    http_status = 400
    title = "The file was not read: it is not a plain file"


class MalformedXml(RejectedMessage):
    """The body is not well-formed XML."""

    code = "malformed-xml"
    http_status = 400
    title = "The message is not well-formed XML"


class ForbiddenXml(RejectedMessage):
    """The XML uses a construct the gateway never accepts (DTD, entity, XInclude, PI ...)."""

    code = "xml-forbidden"
    http_status = 400
    title = "The message uses a forbidden XML construct"


class XmlLimitExceeded(RejectedMessage):
    """The XML is nested too deeply or has an oversized node."""

    code = "xml-limit-exceeded"
    http_status = 400
    title = "The message exceeds the XML size limits"


class UnknownDocumentType(RejectedMessage):
    """The root element is not a document type the gateway knows."""

    code = "unknown-document-type"
    http_status = 422
    title = "The document type is not supported"


class HeaderInvalid(RejectedMessage):
    """The message header is missing or cannot be read."""

    code = "header-invalid"
    http_status = 422
    title = "The message header is invalid"


class SchemaViolation(RejectedMessage):
    """The document does not conform to its XML schema."""

    code = "schema-violation"
    http_status = 422
    title = "The document does not match its schema"


class BusinessRuleViolation(RejectedMessage):
    """The document breaks one or more business rules."""

    code = "business-rule-violation"
    http_status = 422
    title = "The document breaks business rules"


class SignatureProblem(RejectedMessage):
    """Base of every signature and certificate refusal."""

    code = "signature-unacceptable"
    http_status = 422
    title = "The document's signature is not acceptable"


class Unsigned(SignatureProblem):
    """The document carries no signature."""

    code = "unsigned"
    title = "The document is not signed"


class SignatureInvalid(SignatureProblem):
    """The signature value does not verify, or the signature is malformed."""

    code = "signature-invalid"
    title = "The signature does not verify"


class DigestMismatch(SignatureProblem):
    """The signed content was changed after signing."""

    code = "digest-mismatch"
    title = "The document was changed after it was signed"


class AlgorithmForbidden(SignatureProblem):
    """The signature uses an algorithm outside the pinned set."""

    code = "algorithm-forbidden"
    title = "The signature uses a forbidden algorithm"


class SignatureWrapping(SignatureProblem):
    """The signature does not cover exactly the document (wrapping attack shape)."""

    code = "signature-reference-invalid"
    title = "The signature does not cover the whole document"


class CertificateUntrusted(SignatureProblem):
    """The signing certificate does not chain to a trusted CA."""

    code = "certificate-untrusted"
    title = "The signing certificate is not trusted"


class CertificateExpired(SignatureProblem):
    """The signing certificate is outside its validity period."""

    code = "certificate-expired"
    title = "The signing certificate is expired or not yet valid"


class CertificateRevoked(SignatureProblem):
    """The signing certificate is on its CA's revocation list."""

    code = "certificate-revoked"
    title = "The signing certificate has been revoked"


class CertificateUsage(SignatureProblem):
    """The signing certificate is not allowed to make digital signatures."""

    code = "certificate-usage"
    title = "The signing certificate may not sign documents"


class KeyTooWeak(SignatureProblem):
    """A certificate in the signature carries a key outside the gateway's key policy."""

    code = "key-too-weak"
    title = "A certificate's key is too weak or not accepted"


class SenderMismatch(SignatureProblem):
    """The signer belongs to another country than the header's sender."""

    code = "sender-mismatch"
    title = "The signer does not belong to the sending country"


class RevocationUnknown(SignatureProblem):
    """No current revocation list, and the country's policy is hard-fail."""

    code = "revocation-unknown"
    title = "The revocation status of the signing certificate is unknown"


class UnknownRoute(RejectedMessage):
    """No receiving party is configured for the header's receiver."""

    code = "no-route"
    http_status = 422
    title = "The receiver is not reachable through this gateway"


class ReceiverNotEnabled(RejectedMessage):
    """The receiver does not take this document type (or version) from this sender, per the
    parties plan (OCP Rule 27(2))."""

    code = "receiver-not-enabled"
    http_status = 422
    title = "The receiver does not take this document through the ASEAN Single Window"


class Unauthenticated(RejectedMessage):
    """The caller did not prove who it is."""

    code = "unauthenticated"
    http_status = 401
    title = "Authentication is required"


class RoleForbidden(RejectedMessage):
    """The caller is a known operator whose role does not allow this route."""

    code = "role-forbidden"
    http_status = 403
    title = "The operator's role does not allow this"


class SenderNotAllowed(RejectedMessage):
    """The caller tried to send as another party."""

    code = "sender-not-allowed"
    http_status = 403
    title = "The caller may not send as this sender"


class AnswerNotAllowed(RejectedMessage):
    """A Customs Response refers to a message its sender did not receive (or answers a receipt).

    403, like ``sender-not-allowed``: the document may be perfectly valid, but its sender has
    no right to answer that message; correcting the document cannot change that.
    """

    code = "answer-not-allowed"
    http_status = 403
    title = "This party may not answer that message"


class RetransmissionNotAllowed(RejectedMessage):
    """A re-transmission request from anyone but the e-Form D's receiver (OCP Rule 29(3)).

    403: the request may be well formed, but only the Member State the e-Form D was sent to
    may ask for it again, and only from the Member State that issued it.
    """

    code = "retransmission-not-allowed"
    http_status = 403
    title = "This party may not ask for that document again"


class RetransmissionMismatch(RejectedMessage):
    """A copy marked as a re-transmission whose bytes are not the e-Form D journalled here.

    409: the message id is this gateway's e-Form D, but the copy forwarded again differs from
    the bytes it accepted the first time (a re-transmission is the same document, unchanged).
    """

    code = "retransmission-mismatch"
    http_status = 409
    title = "This copy is not the document this gateway holds under that message id"


class ReplyNotAllowed(RejectedMessage):
    """A step of an origin conversation (rejection, clarification, retroactive check, visit)
    from anyone but the party asked, or addressed to anyone but the other party (OCP Rules 13,
    18, 19). 403: the document may be well formed, but its sender has no say in that matter."""

    code = "reply-not-allowed"
    http_status = 403
    title = "This party may not send this step of the conversation"


class ReceiptNotAllowed(RejectedMessage):
    """A delivery receipt that the gateway which delivered the message did not issue."""

    code = "receipt-not-allowed"
    http_status = 403
    title = "This party may not send a receipt for that message"


class ReceiptSignerMismatch(ReceiptNotAllowed):
    """A partner gateway's receipt signed by a certificate its CA vouches for that is not the
    gateway's own, pinned receipt signer (``receipt_signer_sha256`` / ``receipt_signer_subject``
    of a ``remote-gateway`` party): not proof that the partner gateway delivered anything."""

    code = "receipt-signer-mismatch"
    http_status = 403
    title = "This receipt is not signed by the partner gateway's own receipt signer"


class DuplicateMessage(RejectedMessage):
    """Another message already carries the same business key."""

    code = "duplicate-business-key"
    http_status = 409
    title = "This document was already submitted under another message id"


class MessageIdReused(RejectedMessage):
    """A different document arrived under a message id the gateway already has."""

    code = "message-id-reused"
    http_status = 409
    title = "This message id already belongs to a different document"


class UnknownMessage(RejectedMessage):
    """A delivery arrived for a message the journal never recorded."""

    code = "not-in-journal"
    http_status = 422
    title = "The message is not in the journal"


class MethodNotAllowed(RejectedMessage):
    """The path exists, but not for this HTTP method."""

    code = "method-not-allowed"
    http_status = 405
    title = "This method is not allowed here"


class ReplayRefused(RejectedMessage):
    """An operator asked to replay a message that is not a dead letter."""

    code = "not-a-dead-letter"
    http_status = 409
    title = "Only dead letters can be replayed"


class ReplayReasonMissing(RejectedMessage):
    """A replay must say who asks for it and why (the audit trail)."""

    code = "replay-reason-required"
    http_status = 422
    title = "A replay needs an operator name and a reason"


class ParameterInvalid(RejectedMessage):
    """A query parameter or request header has a value the gateway cannot use."""

    code = "parameter-invalid"
    http_status = 400
    title = "A request parameter is not valid"


class ParameterForbidden(RejectedMessage):
    """A query parameter asks for what this caller may not see (another party's messages)."""

    code = "parameter-forbidden"
    http_status = 403
    title = "This caller may not use that parameter value"


class DiscardRefused(RejectedMessage):
    """An operator asked to discard a message that is not a dead letter."""

    code = "discard-refused"
    http_status = 409
    title = "Only dead letters can be discarded"


class RequestTimeout(RejectedMessage):
    """The request body did not arrive within the time allowed."""

    code = "request-timeout"
    http_status = 408
    title = "The request took too long to arrive"


class NotFound(RejectedMessage):
    """The requested resource does not exist."""

    code = "not-found"
    http_status = 404
    title = "Not found"


# --- ours or a peer's: try again ----------------------------------------------------------


class TemporaryFailure(GatewayError):
    """Something the gateway depends on failed; the same request may succeed later."""

    code = "temporary-failure"
    http_status = 503
    retryable = True
    title = "The gateway cannot take the message right now"


class Busy(TemporaryFailure):
    """This caller already has as many requests running as allowed, or the worker is full."""

    code = "busy"
    http_status = 503
    title = "The gateway is busy; try again shortly"


class Draining(TemporaryFailure):
    """The gateway is stopping: it finishes the work it has and takes no new work."""

    code = "draining"
    http_status = 503
    title = "The gateway is stopping; send the message to another node or again shortly"


class BrokerUnavailable(TemporaryFailure):
    """RabbitMQ cannot be reached or did not confirm the publish."""

    code = "broker-unavailable"
    http_status = 503
    title = "The message broker is unavailable; nothing was accepted"


class BrokerBlocked(BrokerUnavailable):
    """RabbitMQ has blocked publishing (``connection.blocked``: a memory or disk alarm)."""

    code = "broker-blocked"
    http_status = 503
    title = "The message broker is not taking messages right now; nothing was accepted"


class JournalUnavailable(TemporaryFailure):
    """The message journal could not record the message."""

    code = "journal-unavailable"
    http_status = 503
    title = "The message journal is unavailable; nothing was accepted"


class JournalReadOnly(JournalUnavailable):
    """The journal can be read but not written (a read-only file, or a database that fails
    over and is a read-only standby for now)."""

    code = "journal-read-only"
    http_status = 503
    title = "The message journal is read-only for now; nothing was accepted"


class JournalFull(JournalUnavailable):
    """The journal's disk or database is full."""

    code = "journal-full"
    http_status = 503
    title = "The message journal's storage is full; nothing was accepted"


class JournalReplaced(JournalUnavailable):
    """The journal file this process opened was deleted or replaced under it."""

    code = "journal-replaced"
    http_status = 503
    title = "The message journal file was deleted or replaced; nothing was accepted"


class JournalSchemaMismatch(JournalUnavailable):
    """The journal's schema is at another version than this gateway's: older (run
    ``asw-gateway journal migrate``) or newer (run the newer gateway)."""

    code = "journal-schema-mismatch"
    http_status = 503
    title = "The message journal's schema version does not match this gateway's"


class PeerUnavailable(TemporaryFailure):
    """A receiving national single window failed or could not be reached."""

    code = "peer-unavailable"
    http_status = 502
    title = "The receiving system is unavailable"


class FolderUnsafe(PeerUnavailable):
    """A party's drop folder is a link, not a folder, or belongs to someone else: not used."""

    code = "folder-unsafe"
    title = "The drop folder is not safe to use"


class PeerTimeout(TemporaryFailure):
    """A receiving national single window did not answer in time."""

    code = "peer-timeout"
    http_status = 504
    title = "The receiving system did not answer in time"


class PermanentDeliveryFailure(GatewayError):
    """The receiver refused the document for good; it goes to the dead letters."""

    code = "delivery-refused"
    http_status = 502
    title = "The receiving system refused the document"


class RetriesExhausted(GatewayError):
    """Every retry step failed; the message is parked for an operator."""

    code = "retries-exhausted"
    http_status = 504
    title = "Delivery failed after every retry"


class PoisonMessage(GatewayError):
    """Delivering this message kept failing hard (the worker died or crashed) too often."""

    code = "poison-message"
    http_status = 500
    title = "The message could not be processed; the worker failed on it repeatedly"


class SettingsError(GatewayError):
    """The configuration is invalid; raised once with every problem listed."""

    code = "settings-invalid"
    http_status = 500
    title = "The gateway configuration is invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = tuple(problems)


def all_error_classes() -> list[type[GatewayError]]:
    """Every concrete class of the tree, for catalogues and tests."""
    seen: list[type[GatewayError]] = []
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def codes_by_status() -> dict[int, list[str]]:
    """Every code of the error tree, by HTTP status, sorted: what a problem answer of a status
    can carry (the OpenAPI document lists them from here, so the two cannot drift)."""
    found: dict[int, set[str]] = {}
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        kind = pending.pop()
        found.setdefault(kind.http_status, set()).add(kind.code)
        pending.extend(kind.__subclasses__())
    return {status: sorted(codes) for status, codes in sorted(found.items())}
