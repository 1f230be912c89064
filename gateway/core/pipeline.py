"""Ingest as a pure function: bytes in, an accepted message (or a refusal) out.

parse (hardened) -> read the header -> verify the signature (or note that the gateway signs
for this sender) -> authorise the caller -> validate (XSD, rules) on the signed content ->
decide the route -> sign on behalf of the sender where configured.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from lxml import etree

from gateway.core.documents import document_id_of
from gateway.core.envelope import NS_DSIG, Envelope, read_envelope
from gateway.core.parsing import ParseLimits, parse
from gateway.core.routing import Route, RoutingTable
from gateway.core.signatures import SigningKey, sign, verify
from gateway.core.trust import Signer, TrustStore
from gateway.core.validation import ValidationReport, Validator
from gateway.errors import CertificateUntrusted, Finding, SenderNotAllowed, Unsigned

_SIGNATURE = f"{{{NS_DSIG}}}Signature"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A message that passed every check and knows where it goes."""

    envelope: Envelope
    document_id: str | None
    route: Route
    payload: bytes
    digest: str
    report: ValidationReport
    signer: Signer | None
    signed_by_gateway: bool
    warnings: tuple[str, ...]
    root: etree._Element = field(compare=False, repr=False)
    """The document as parsed once and validated (the signed content): later checks (the
    registers) read it instead of parsing the payload again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A document parsed and validated for ``POST /v1/validate``: never routed or stored."""

    envelope: Envelope
    report: ValidationReport
    root: etree._Element = field(compare=False, repr=False)


def with_findings(accepted: Accepted, found: Sequence[Finding]) -> Accepted:
    """``accepted`` with the findings of a journal-reading check added (registers, the message
    a conversation step follows), or raise the refusal they make."""
    if not found:
        return accepted
    report = replace(accepted.report, rule_findings=accepted.report.rule_findings + tuple(found))
    refusal = report.refusal()
    if refusal is not None:
        raise refusal
    return replace(accepted, report=report)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingest:
    """What ingest needs, built once at start-up.

    ``signers`` holds the signing keys of the parties the gateway signs for ("the gateway
    signs for me"); any other party's document must carry its own valid signature when
    ``require_signature`` is set.
    """

    limits: ParseLimits
    validator: Validator
    routes: RoutingTable
    signers: Mapping[str, SigningKey] = field(default_factory=dict)
    require_signature: bool = True

    def check(self, data: bytes, *, now: datetime) -> Checked:
        """Parse, read the header and validate, without routing (``POST /v1/validate``)."""
        root = parse(data, self.limits)
        envelope = read_envelope(root)
        return Checked(envelope=envelope, report=self.validator.check(root, now=now), root=root)

    def accept(
        self,
        data: bytes,
        *,
        now: datetime,
        trust: TrustStore | None,
        caller: str | None = None,
        sign_with: SigningKey | None = None,
    ) -> Accepted:
        """Run every check on ``data`` and decide its route, or raise why not.

        A signed document is verified first, and only what the signature covers is validated
        and routed. ``sign_with`` signs an unsigned document after validation: for documents
        the gateway issues itself (delivery receipts), which need no verifying. ``caller`` is
        the authenticated party (country code) submitting the document, when the channel knows
        it; a party may only send as itself.
        """
        root = parse(data, self.limits)
        envelope = read_envelope(root)
        signer: Signer | None = None
        warnings: tuple[str, ...] = ()
        signing_key: SigningKey | None = None
        if root.find(_SIGNATURE) is not None:
            if trust is None:
                raise CertificateUntrusted("This gateway has no trust store to check signatures.")
            verified = verify(root, trust, now=now)
            root, envelope = verified.root, verified.envelope
            signer, warnings = verified.signer, verified.warnings
        else:
            signing_key = sign_with or self.signers.get(envelope.sender.country)
            if signing_key is None and self.require_signature:
                raise Unsigned(
                    f"The document from {envelope.sender.country} is not signed. Sign it with "
                    "the issuing authority's certificate (enveloped XML signature), or ask the "
                    "gateway operator to sign on your behalf."
                )
        if caller is not None and envelope.sender.country != caller:
            raise SenderNotAllowed(
                f"This channel belongs to {caller}; it cannot submit a document whose sender is "
                f"{envelope.sender.country}."
            )
        report = self.validator.check(root, now=now)
        refusal = report.refusal()
        if refusal is not None:
            raise refusal
        route = self.routes.decide(envelope)
        payload = data
        if signing_key is not None:
            payload = etree.tostring(
                sign(root, signing_key), xml_declaration=True, encoding="UTF-8"
            )
        return Accepted(
            envelope=envelope,
            document_id=document_id_of(root, envelope.document_type),
            route=route,
            payload=payload,
            digest=hashlib.sha256(payload).hexdigest(),
            report=report,
            signer=signer,
            signed_by_gateway=signing_key is not None,
            warnings=warnings,
            root=root,
        )
