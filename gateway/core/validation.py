"""Document validation: XSD first, then business rules, as one report of findings.

``Validator.load(xsd_dir)`` compiles every document type's schema once (libxml2, a few ms);
``check()`` is then pure and cheap enough for the ingest hot path: libxml2 validates the tree,
and only a document that passes its schema goes on to the business rules (rules trust the
structure the schema guarantees). A refused document is explained from xmlschema's structured
errors (``gateway.core.schemas.SchemaExplainer``), which costs more but only on refusal.
Findings from the two stages are kept apart, because the HTTP layer answers
``schema-violation`` for the first and ``business-rule-violation`` for the second. Codes:
``gateway.core.schemas`` (``xsd-*``) and ``gateway.core.rule_catalogue.CATALOGUE`` (the rules
themselves: the package ``gateway.core.rules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.core.aeo import MraPlan, default_mra
from gateway.core.envelope import DocumentType, document_type_of
from gateway.core.rendering import render_document
from gateway.core.rules import check_rules
from gateway.core.schemas import SCHEMA_FILES, ExplainLimits, SchemaExplainer, load_schemas
from gateway.errors import BusinessRuleViolation, Finding, RejectedMessage, SchemaViolation

__all__ = ["SCHEMA_FILES", "ValidationReport", "Validator"]

DOCUMENT_TYPE_NOT_ENABLED = "document-type-not-enabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """Everything found in one document; valid when no finding is an error.

    ``schema_findings`` come from the XSD (codes ``xsd-*``, or ``document-type-not-enabled``);
    ``rule_findings`` from the business rules, which run only when the schema passed.
    """

    document_type: DocumentType
    schema_findings: tuple[Finding, ...] = ()
    rule_findings: tuple[Finding, ...] = ()

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding, schema findings first."""
        return self.schema_findings + self.rule_findings

    @property
    def schema_valid(self) -> bool:
        """True when the document conforms to its XSD (rules may still have failed)."""
        return not self.schema_findings

    @property
    def valid(self) -> bool:
        """True when no finding has severity ``error``."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings with severity ``error``."""
        return tuple(f for f in self.findings if f.severity == "error")

    def refusal(self) -> RejectedMessage | None:
        """The error to refuse the document with: ``SchemaViolation`` when the XSD failed,
        ``BusinessRuleViolation`` when a rule gave an error, ``None`` when it is valid."""
        if not self.schema_valid:
            return SchemaViolation(
                f"The {self.document_type.value} document does not match its schema "
                f"({len(self.schema_findings)} problem(s)); see findings.",
                findings=self.schema_findings,
            )
        if not self.valid:
            return BusinessRuleViolation(
                f"The {self.document_type.value} document breaks {len(self.errors)} business "
                "rule(s); see findings.",
                findings=self.rule_findings,
            )
        return None


@dataclass(frozen=True, slots=True)
class Validator:
    """Compiled schemas for every document type the gateway knows."""

    schemas: dict[DocumentType, etree.XMLSchema]
    explainer: SchemaExplainer
    mra: MraPlan = field(default_factory=default_mra)
    """The ASEAN AEO MRA plan the AEO rules read (setting ``documents.mra_file``)."""

    @classmethod
    def load(
        cls, xsd_dir: Path, limits: ExplainLimits | None = None, mra: MraPlan | None = None
    ) -> Validator:
        """Compile the schema of each document type found under ``xsd_dir``.

        libxml2 compiles them now (the accept path); xmlschema loads each lazily, the first
        time a document of that type is refused, to explain the refusal (``limits``).
        """
        plan = default_mra() if mra is None else mra
        return cls(load_schemas(xsd_dir), SchemaExplainer(xsd_dir, limits), plan)

    def render(self, root: etree._Element) -> dict[str, Any] | None:
        """The document as JSON shaped by its schema (``gateway.core.rendering``); None when
        this gateway has no schema for its type. Raises ``UnknownDocumentType`` as check does.
        """
        schema = self.explainer.schema(document_type_of(root))
        return None if schema is None else render_document(root, schema)

    def check(self, root: etree._Element, *, now: datetime) -> ValidationReport:
        """Validate ``root`` against its schema, then its business rules, as of ``now``.

        ``now`` should be timezone-aware (a naive value is taken as UTC). Raises
        ``UnknownDocumentType`` when the root is not a document type the gateway knows.
        """
        doc_type = document_type_of(root)
        schema = self.schemas.get(doc_type)
        if schema is None:
            finding = Finding(
                severity="error",
                code=DOCUMENT_TYPE_NOT_ENABLED,
                message=f"This gateway has no schema for {doc_type.value} documents.",
            )
            return ValidationReport(document_type=doc_type, schema_findings=(finding,))
        if not schema.validate(root):
            findings = self.explainer.findings(root, doc_type, schema.error_log)
            return ValidationReport(document_type=doc_type, schema_findings=findings)
        return ValidationReport(
            document_type=doc_type, rule_findings=check_rules(root, doc_type, now=now, mra=self.mra)
        )
