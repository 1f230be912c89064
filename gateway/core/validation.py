"""Document validation: XSD first, then business rules, as one report of findings.

``Validator.load(xsd_dir)`` compiles every document type's schema once (libxml2, about 1 ms);
``check()`` is then pure and cheap enough for the ingest hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from lxml import etree

from gateway.core.envelope import DocumentType, document_type_of
from gateway.errors import Finding

SCHEMA_FILES: dict[DocumentType, str] = {
    DocumentType.FORM_D: "formd/formd-1.xsd",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    """Everything found in one document; valid when no finding is an error."""

    document_type: DocumentType
    findings: tuple[Finding, ...]

    @property
    def valid(self) -> bool:
        """True when no finding has severity ``error``."""
        return not any(f.severity == "error" for f in self.findings)


@dataclass(frozen=True, slots=True)
class Validator:
    """Compiled schemas for every document type the gateway knows."""

    schemas: dict[DocumentType, etree.XMLSchema]

    @classmethod
    def load(cls, xsd_dir: Path) -> Validator:
        """Compile the schema of each document type found under ``xsd_dir``."""
        schemas = {
            doc_type: etree.XMLSchema(etree.parse(str(xsd_dir / relative)))
            for doc_type, relative in SCHEMA_FILES.items()
        }
        return cls(schemas)

    def check(self, root: etree._Element, *, now: datetime) -> ValidationReport:
        """Validate ``root`` against its schema and return every finding."""
        doc_type = document_type_of(root)
        schema = self.schemas.get(doc_type)
        if schema is None:
            finding = Finding(
                severity="error",
                code="document-type-not-enabled",
                message=f"This gateway has no schema for {doc_type.value} documents.",
            )
            return ValidationReport(document_type=doc_type, findings=(finding,))
        if schema.validate(root):
            return ValidationReport(document_type=doc_type, findings=())
        findings = tuple(
            Finding(
                severity="error",
                code="xsd-invalid",
                message=entry.message,
                path=entry.path,
                line=entry.line,
            )
            for entry in cast("Iterable[Any]", schema.error_log)  # lxml-stubs: not iterable
        )
        return ValidationReport(document_type=doc_type, findings=findings)
