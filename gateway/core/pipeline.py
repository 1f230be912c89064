"""Ingest as a pure function: bytes in, an accepted message (or a refusal) out.

parse (hardened) -> read the header -> validate (XSD, rules) -> decide the route.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.core.documents import document_id_of
from gateway.core.envelope import Envelope, read_envelope
from gateway.core.parsing import ParseLimits, parse
from gateway.core.routing import Route, RoutingTable
from gateway.core.validation import ValidationReport, Validator
from gateway.errors import SchemaViolation, SenderNotAllowed


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """A message that passed every check and knows where it goes."""

    envelope: Envelope
    document_id: str | None
    route: Route
    payload: bytes
    digest: str
    report: ValidationReport


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingest:
    """What ingest needs, built once at start-up."""

    limits: ParseLimits
    validator: Validator
    routes: RoutingTable

    def check(self, data: bytes, *, now: datetime) -> tuple[Envelope, ValidationReport]:
        """Parse, read the header and validate, without routing (``POST /v1/validate``)."""
        envelope, report, _ = self._check(data, now=now)
        return envelope, report

    def _check(
        self, data: bytes, *, now: datetime
    ) -> tuple[Envelope, ValidationReport, etree._Element]:
        root = parse(data, self.limits)
        envelope = read_envelope(root)
        return envelope, self.validator.check(root, now=now), root

    def accept(self, data: bytes, *, now: datetime, caller: str | None = None) -> Accepted:
        """Run every check on ``data`` and decide its route, or raise why not.

        ``caller`` is the authenticated party (country code) submitting the document, when the
        channel knows it; a party may only send as itself.
        """
        envelope, report, root = self._check(data, now=now)
        if caller is not None and envelope.sender.country != caller:
            raise SenderNotAllowed(
                f"This channel belongs to {caller}; it cannot submit a document whose sender is "
                f"{envelope.sender.country}."
            )
        if not report.valid:
            errors = tuple(f for f in report.findings if f.severity == "error")
            raise SchemaViolation(
                f"The {envelope.document_type.value} document has {len(errors)} error(s); "
                "see findings.",
                findings=report.findings,
            )
        route = self.routes.decide(envelope)
        return Accepted(
            envelope=envelope,
            document_id=document_id_of(root, envelope.document_type),
            route=route,
            payload=data,
            digest=hashlib.sha256(data).hexdigest(),
            report=report,
        )
