"""The document schemas: where they are, compiling them, and explaining a refusal.

Schemas are compiled once with libxml2 (``lxml.etree.XMLSchema``), which decides: that is the
hot path, and a valid document never meets anything else here. When a document fails, the
:class:`SchemaExplainer` validates it again with ``xmlschema`` (the same xsd/ files, loaded
lazily) and turns each structured error (the schema component that failed, the element, what
was expected) into a :class:`Finding` with a stable ``xsd-*`` code, the Form D box where there
is one, and a message written for a trade officer instead of libxml2's
``Element '{urn:...}ID': [facet 'pattern'] ...``. A document larger than
:class:`ExplainLimits` allows is explained from libxml2's error log instead
(:func:`log_findings`): the same codes, paths and lines, plainer messages.

XSD finding codes (stable):

=========================  =============================================================
xsd-missing-element        a required element is absent
xsd-unexpected-element     an element is out of place, misspelt or not allowed
xsd-invalid-value          a value has the wrong format, length, range or type
xsd-not-in-code-list       a code is not in its code list (enumeration)
xsd-missing-attribute      a required attribute (currencyID, unitCode) is absent
xsd-unexpected-attribute   an attribute is not allowed
xsd-duplicate-key          a value that must be unique (item number) repeats
xsd-unexpected-text        text where only child elements are allowed
xsd-invalid                any other schema violation (the validator's own reason)
=========================  =============================================================
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Final

import xmlschema
from lxml import etree
from xmlschema.validators import (
    XsdAttributeGroup,
    XsdElement,
    XsdEnumerationFacets,
    XsdFacet,
    XsdGroup,
    XsdLengthFacet,
    XsdMaxLengthFacet,
    XsdMinLengthFacet,
    XsdPatternFacets,
)
from xmlschema.validators.exceptions import (
    XMLSchemaChildrenValidationError,
    XMLSchemaDecodeError,
    XMLSchemaValidationError,
)

from gateway.core.envelope import DocumentType
from gateway.errors import Finding

SCHEMA_FILES: Final[dict[DocumentType, str]] = {
    DocumentType.FORM_D: "formd/formd-1.xsd",
    DocumentType.ACDD: "acdd/acdd-1.xsd",
    DocumentType.CUSTOMS_RESPONSE: "response/response-1.xsd",
    DocumentType.DELIVERY_RECEIPT: "receipt/receipt-1.xsd",
    DocumentType.RETRANSMISSION_REQUEST: "retransmission/retransmission-1.xsd",
    DocumentType.REJECTION_NOTICE: "conversation/rejection-1.xsd",
    DocumentType.CLARIFICATION: "conversation/rejection-1.xsd",
    DocumentType.RETRO_CHECK_REQUEST: "conversation/verification-1.xsd",
    DocumentType.RETRO_CHECK_REPLY: "conversation/verification-1.xsd",
    DocumentType.VISIT_REQUEST: "conversation/verification-1.xsd",
    DocumentType.VISIT_CONSENT: "conversation/verification-1.xsd",
    DocumentType.VISIT_RESULT: "conversation/verification-1.xsd",
    DocumentType.ORIGIN_DETERMINATION: "conversation/determination-1.xsd",
    DocumentType.CE_REGISTER_UPDATE: "register/ce-register-1.xsd",
    DocumentType.ORIGIN_DECLARATION: "origin/origin-declaration-1.xsd",
    DocumentType.AEO_STATUS: "register/aeo-status-1.xsd",
    DocumentType.CE_LOOKUP_REQUEST: "register/ce-lookup-1.xsd",
    DocumentType.CE_LOOKUP_RESPONSE: "register/ce-lookup-1.xsd",
    DocumentType.AEO_STATUS_QUERY: "register/aeo-query-1.xsd",
    DocumentType.AEO_STATUS_RESPONSE: "register/aeo-query-1.xsd",
}

XSD_CODES: Final = (
    "xsd-missing-element",
    "xsd-unexpected-element",
    "xsd-invalid-value",
    "xsd-not-in-code-list",
    "xsd-missing-attribute",
    "xsd-unexpected-attribute",
    "xsd-duplicate-key",
    "xsd-unexpected-text",
    "xsd-invalid",
)


def load_schemas(xsd_dir: Path) -> dict[DocumentType, etree.XMLSchema]:
    """Compile the schema of each document type whose file exists under ``xsd_dir``."""
    schemas: dict[DocumentType, etree.XMLSchema] = {}
    for doc_type, relative in SCHEMA_FILES.items():
        path = xsd_dir / relative
        if path.is_file():
            schemas[doc_type] = etree.XMLSchema(etree.parse(str(path)))
    return schemas


# --- where in the Form D an element is ---------------------------------------------------

# (parent, element) pairs first, then element names alone; the deepest match wins.
_FORM_D_BOX_PAIRS: Final = {
    ("Declaration", "ID"): "header",
    ("Declaration", "IssueDateTime"): "12",
    ("Origin", "CountryCode"): "11",
    ("Packaging", "MarksNumbersID"): "6",
}
_FORM_D_BOXES: Final = {
    "ExportCountry": "header",
    "Exporter": "1",
    "Consignee": "2",
    "Exhibition": "2",
    "Consignment": "3",
    "SequenceNumeric": "5",
    "Packaging": "7",
    "Commodity": "7",
    "BackToBackOriginalReference": "7",
    "ThirdCountryInvoicingParty": "7",
    "OriginCriterionCode": "8",
    "GoodsMeasure": "9",
    "FOBValueAmount": "9",
    "Invoice": "10",
    "Authentication": "11",
    "Destination": "11",
    "IssueLocationID": "12",
    "IssuingAuthority": "12",
    "CertifiedTrueCopyIndicator": "12",
    "CertificateFlags": "13",
    "GovernmentAgencyGoodsItem": "5",
}

_LABEL_PAIRS: Final = {
    ("Classification", "ID"): "HS code",
    ("Declaration", "ID"): "reference number",
    ("Declaration", "IssueDateTime"): "issue date",
    ("Invoice", "ID"): "invoice number",
    ("Invoice", "IssueDateTime"): "invoice date",
    ("UnloadingLocation", "ID"): "port of discharge",
    ("LoadingLocation", "ID"): "port of loading",
    ("ExportCountry", "ID"): "exporting country",
    ("Destination", "CountryCode"): "importing country",
    ("Origin", "CountryCode"): "country of origin",
    ("SenderParty", "CountryCode"): "sender country",
    ("ReceiverParty", "CountryCode"): "receiver country",
    ("Packaging", "TypeCode"): "package type",
    ("Digest", "Value"): "digest value",
    ("Address", "Line"): "address line",
    ("Address", "CountryCode"): "address country",
    ("Exporter", "Name"): "exporter name",
    ("Consignee", "Name"): "consignee name",
    ("Declarant", "Name"): "declarant name",
    ("Response", "IssueDateTime"): "response date-time",
}
_LABELS: Final = {
    "OriginCriterionCode": "origin criterion",
    "MarksNumbersID": "marks and numbers",
    "QuantityQuantity": "number of packages",
    "Description": "description of goods",
    "GrossMassMeasure": "gross weight",
    "TariffQuantity": "quantity",
    "FOBValueAmount": "FOB value",
    "IssueLocationID": "place of issue",
    "DepartureDate": "departure date",
    "ExitDateTime": "departure date",
    "ModeCode": "transport mode",
    "SequenceNumeric": "item number",
    "MessageID": "message id",
    "CreationDateTime": "creation date-time",
    "ReferencedMessageID": "referenced message id",
    "FunctionCode": "function code",
    "DocumentTypeCode": "document type code",
    "NameCode": "status",
    "ValidationCode": "reason code",
    "ReceivedMessageID": "received message id",
    "ReceivedDateTime": "time of receipt",
    "AlgorithmURI": "digest algorithm",
    "CityName": "city",
    "PostcodeID": "postcode",
    "currencyID": "currency",
    "unitCode": "unit",
}
_TYPE_NAMES: Final = {
    "DateType": "date (YYYY-MM-DD)",
    "DateTimeWithZoneType": "date-time with a time zone (e.g. 2026-11-20T09:15:00+08:00)",
    "xs:boolean": "true or false",
    "xs:decimal": "number",
    "xs:base64Binary": "base64 value",
    "SequenceNumericType": "whole number from 1 to 99999",
    "PackageQuantityType": "whole number",
    "AmountContentType": "amount (up to 3 decimals, not negative)",
    "MeasureContentType": "measure (up to 6 decimals, not negative)",
}
_PATTERN_HINTS: Final = {
    "HS code": "Give the HS code as digits, e.g. 84821000 (AHTN) or 848210 (HS).",
    "unit": "Use a UN/ECE Rec 20 code in capitals, e.g. KGM kilogram, H87 piece, LTR litre.",
    "port of discharge": "Use a UN/LOCODE without the space, e.g. THLCH for Laem Chabang.",
    "port of loading": "Use a UN/LOCODE without the space, e.g. SGSIN for Singapore.",
    "place of issue": "Use a UN/LOCODE without the space, e.g. SGSIN for Singapore.",
    "message id": "Use a UUID such as 6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f.",
    "referenced message id": "Use the UUID of the earlier message.",
    "creation date-time": "Give the date-time with its time zone, e.g. 2026-11-20T09:15:00+08:00.",
    "response date-time": "Give the date-time with its time zone, e.g. 2026-11-20T09:15:00+08:00.",
    "time of receipt": "Give the date-time with its time zone, e.g. 2026-11-20T09:15:00Z.",
}
_CODE_LIST_HINTS: Final = {
    "package type": "Use a UN/ECE Rec 21 code, e.g. CT carton, BX box, PX pallet, BG bag, "
    "DR drum, CR crate (xsd/codelists/package-type-1.xsd).",
    "unit": "Use a UN/ECE Rec 20 code, e.g. KGM kilogram, H87 piece, MTR metre, LTR litre, "
    "SET set (xsd/codelists/unit-1.xsd).",
    "currency": "Use an ISO 4217 code such as USD, SGD, THB, MYR or IDR.",
}

_NS_RE: Final = re.compile(r"\{[^}]*\}")
_CAMEL_RE: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEGMENT_RE: Final = re.compile(r"^(?:[^:\[]*:)?([^\[]+)(?:\[(\d+)\])?$")


def _segments(path: str | None) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for raw in (path or "").split("/"):
        match = _SEGMENT_RE.match(raw)
        if raw and match:
            out.append((match.group(1), int(match.group(2)) if match.group(2) else None))
    return out


def form_d_box(names: list[str]) -> str | None:
    """The Form D box of the element at the end of ``names`` (local names from the root)."""
    for depth in range(len(names) - 1, 0, -1):
        pair = _FORM_D_BOX_PAIRS.get((names[depth - 1], names[depth]))
        box = pair or _FORM_D_BOXES.get(names[depth])
        if box is not None:
            return box
    return None


def label(names: list[str], attribute: str | None = None) -> str:
    """A trade officer's name for the element (or attribute) at the end of ``names``."""
    if attribute is not None:
        return _LABELS.get(attribute, attribute)
    name = names[-1] if names else "document"
    parent = names[-2] if len(names) > 1 else ""
    return _LABEL_PAIRS.get((parent, name)) or _LABELS.get(name) or _words(name)


def _words(name: str) -> str:
    return _CAMEL_RE.sub(" ", name).lower()


def where(box: str | None, item: int | str | None) -> str:
    """The location prefix of a message: ``Box 7, goods item 2: ``."""
    parts = []
    if box == "header":
        parts.append("Form D heading")
    elif box is not None:
        parts.append(f"Box {box}")
    if item is not None:
        parts.append(f"goods item {item}")
    return (", ".join(parts) + ": ") if parts else ""


# --- explaining a refusal: xmlschema's structured errors ------------------------------------


@dataclass(frozen=True, slots=True)
class ExplainLimits:
    """Bounds on the (pure Python, slower) explanation of a refused document.

    ``max_errors``: findings past this many are not looked for. ``max_elements``: a document
    with more elements than this is explained from libxml2's error log instead (codes, paths
    and lines alike; messages plainer), so a large refused document costs no more than lxml.
    """

    max_errors: int = 50
    max_elements: int = 1_000


class SchemaExplainer:
    """Turns a refusal into findings, from the structured errors of ``xmlschema``.

    lxml (libxml2) decides; only a refused document comes here. xmlschema reads the same xsd/
    files, lazily and once per document type, and says of each error which schema component
    failed (a facet, a content model, an attribute group, an identity constraint), on which
    element, and what was expected: the code, box, label and hint follow from that, without
    reading libxml2's English. Thread-safe: schemas load under a lock; validation holds no
    shared state.
    """

    def __init__(self, xsd_dir: Path, limits: ExplainLimits | None = None) -> None:
        """Explain refusals of the schemas under ``xsd_dir`` within ``limits``."""
        self.xsd_dir = xsd_dir
        self.limits = limits or ExplainLimits()
        self._schemas: dict[DocumentType, xmlschema.XMLSchemaBase | None] = {}
        self._lock = threading.Lock()

    def schema(self, doc_type: DocumentType) -> xmlschema.XMLSchemaBase | None:
        """The xmlschema of ``doc_type``, built on first use; None when it cannot be built."""
        with self._lock:
            if doc_type not in self._schemas:
                path = self.xsd_dir / SCHEMA_FILES[doc_type]
                try:
                    # our own files, imports among them only; nothing from the network
                    self._schemas[doc_type] = xmlschema.XMLSchema10(
                        str(path), allow="local", defuse="always"
                    )
                except (xmlschema.XMLSchemaException, OSError):
                    self._schemas[doc_type] = None
            return self._schemas[doc_type]

    def findings(
        self, root: etree._Element, doc_type: DocumentType, error_log: etree._ListErrorLog
    ) -> tuple[Finding, ...]:
        """The findings of a document libxml2 refused (``error_log``: its errors)."""
        limit = self.limits.max_elements
        if sum(1 for _ in islice(root.iter(), limit + 1)) > limit:
            return log_findings(error_log, doc_type)
        schema = self.schema(doc_type)
        if schema is None:
            return log_findings(error_log, doc_type)
        try:
            # use_location_hints=False: an xsi:schemaLocation in the document is never followed
            errors = list(
                islice(schema.iter_errors(root, use_location_hints=False), self.limits.max_errors)
            )
        except (xmlschema.XMLSchemaException, ValueError, TypeError):
            return log_findings(error_log, doc_type)
        found = _xmlschema_findings(errors, root.getroottree(), doc_type, schema)
        # The two engines should agree; if xmlschema sees nothing, libxml2's word stands.
        return found or log_findings(error_log, doc_type)


@dataclass(frozen=True, slots=True)
class _Problem:
    """One error, located: the element, the attribute if any, and its explanation."""

    elem: etree._Element
    code: str
    tail: str
    hint: str | None
    attribute: str | None = None
    value_error: bool = False


def _xmlschema_findings(
    errors: list[XMLSchemaValidationError],
    tree: etree._ElementTree,
    doc_type: DocumentType,
    schema: xmlschema.XMLSchemaBase,
) -> tuple[Finding, ...]:
    findings: list[Finding] = []
    seen: set[tuple[str, str | None]] = set()
    for error in errors:
        problem = _problem(error, tree, schema)
        if problem is None:
            continue
        path = tree.getpath(problem.elem)
        key = (path, problem.attribute)
        if problem.value_error and key in seen:
            continue  # a value can fail its facet and its base type: report it once
        seen.add(key)
        findings.append(_finding(problem, path, doc_type))
    return tuple(findings)


def _finding(problem: _Problem, path: str, doc_type: DocumentType) -> Finding:
    segments = _segments(path)
    names = [name for name, _ in segments]
    items = [index for name, index in segments if name == "GovernmentAgencyGoodsItem"]
    item = (items[0] or 1) if items else None
    box = form_d_box(names) if doc_type is DocumentType.FORM_D else None
    text = where(box, item) + problem.tail
    line: object = problem.elem.sourceline  # the stubs leave it untyped
    return Finding(
        severity="error",
        code=problem.code,
        message=text[:1].upper() + text[1:],
        box=box,
        path=path,
        line=line if isinstance(line, int) and line > 0 else None,
        hint=problem.hint,
    )


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else str(tag)


def _names_of(elem: etree._Element) -> list[str]:
    names = [_local(e.tag) for e in elem.iterancestors()][::-1]
    return [*names, _local(elem.tag)]


def _value_attribute(elem: etree._Element, value: object) -> str | None:
    """Which attribute of ``elem`` holds the failing ``value`` (None: its text does)."""
    if not isinstance(value, str) or (elem.text or "").strip() == value.strip():
        return None
    for name, attr_value in elem.attrib.items():
        if attr_value == value:
            return _local(name)
    return None


def _type_label(component: object) -> str | None:
    """A trade officer's name for the simple type ``component`` restricts, nearest first."""
    while component is not None:
        name = getattr(component, "local_name", None)
        if isinstance(name, str):
            found = _TYPE_NAMES.get(name) or _TYPE_NAMES.get(f"xs:{name}")
            if found:
                return found
        component = getattr(component, "base_type", None)
    return None


def _problem(  # noqa: PLR0911
    error: XMLSchemaValidationError, tree: etree._ElementTree, schema: xmlschema.XMLSchemaBase
) -> _Problem | None:
    elem: object = error.elem  # lxml's element: xmlschema validates the tree it is given
    if not isinstance(elem, etree._Element) or elem.getroottree().getroot() is not tree.getroot():
        return None
    validator = error.validator
    if isinstance(error, XMLSchemaChildrenValidationError):
        return _content_problem(error, elem)
    if isinstance(validator, XsdAttributeGroup):
        return _attribute_problem(validator, error.obj, elem)
    if isinstance(validator, XsdElement):
        return _element_problem(error, elem, schema)
    if isinstance(validator, XsdGroup):
        what = label(_names_of(elem))
        return _Problem(
            elem=elem,
            code="xsd-unexpected-text",
            tail=f"the {what} contains text where only elements belong.",
            hint="Remove the stray text.",
        )
    if isinstance(validator, XsdFacet) or isinstance(error, XMLSchemaDecodeError):
        return _value_problem(error, elem)
    return _Problem(
        elem=elem,
        code="xsd-invalid",
        tail=f"{label(_names_of(elem))}: {error.reason or 'does not match the schema'}.",
        hint=None,
    )


def _expected_names(error: XMLSchemaChildrenValidationError) -> str | None:
    names = [
        _local(name)
        for particle in error.expected or ()
        if isinstance(name := getattr(particle, "name", None), str)
    ]
    return ", ".join(dict.fromkeys(names)) or None


def _content_problem(error: XMLSchemaChildrenValidationError, parent: etree._Element) -> _Problem:
    expected = _expected_names(error)
    child: object = error.invalid_child
    if child is None or not isinstance(child, etree._Element):
        missing = expected or "a required element"
        return _Problem(
            elem=parent,
            code="xsd-missing-element",
            tail=f"the {label(_names_of(parent))} is incomplete: {missing} is missing.",
            hint=f"Add {missing}.",
        )
    what = label(_names_of(child))
    if expected is None:
        return _Problem(
            elem=child,
            code="xsd-unexpected-element",
            tail=f"the element {what} is not allowed here.",
            hint="Remove the element or check its name.",
        )
    return _Problem(
        elem=child,
        code="xsd-unexpected-element",
        tail=f"found the {what} where {expected} was expected: {expected} may be missing, or "
        f"the {what} misplaced or misspelt.",
        hint=f"Add {expected} before it, or fix the element's name or order.",
    )


def _attribute_problem(group: XsdAttributeGroup, given: object, elem: etree._Element) -> _Problem:
    present = {_local(name) for name in (given if isinstance(given, dict) else elem.attrib)}
    what = label(_names_of(elem))
    for required in group.iter_required():
        name = _local(required)
        if name not in present:
            return _Problem(
                elem=elem,
                attribute=name,
                code="xsd-missing-attribute",
                tail=f"the {what} has no {_LABELS.get(name, name)} ({name}).",
                hint=f"Add the {name} attribute.",
            )
    allowed = {_local(name) for name in group if isinstance(name, str)}
    extra = sorted(present - allowed) or ["?"]
    return _Problem(
        elem=elem,
        attribute=extra[0],
        code="xsd-unexpected-attribute",
        tail=f"the attribute {extra[0]} is not allowed on the {what}.",
        hint="Remove the attribute.",
    )


def _element_problem(
    error: XMLSchemaValidationError, elem: etree._Element, schema: xmlschema.XMLSchemaBase
) -> _Problem:
    """An error of the element itself: in these schemas, a repeat of a value an xs:unique
    constraint keeps unique (the goods item number); anything else is told as it is."""
    fields = {
        field.path.rsplit(":", 1)[-1]
        for root in schema.elements.values()
        for identity in root.identities
        for field in identity.fields
    }
    values = [(child.text or "").strip() for child in elem if _local(child.tag) in fields]
    if not values:
        return _Problem(
            elem=elem,
            code="xsd-invalid",
            tail=f"the {label(_names_of(elem))}: {error.reason or 'does not match the schema'}.",
            hint=None,
        )
    return _Problem(
        elem=elem,
        code="xsd-duplicate-key",
        tail=f"the item number {values[0]} is used more than once.",
        hint="Number the goods items 1, 2, 3, ... without repeats.",
    )


def _value_problem(error: XMLSchemaValidationError, elem: etree._Element) -> _Problem:
    facet = error.validator
    attribute = _value_attribute(elem, error.obj)
    what = label(_names_of(elem), attribute)
    value = error.obj if isinstance(error.obj, str) else (elem.text or "").strip()

    def problem(code: str, tail: str, hint: str | None) -> _Problem:
        return _Problem(
            elem=elem, attribute=attribute, code=code, tail=tail, hint=hint, value_error=True
        )

    if isinstance(facet, XsdEnumerationFacets):
        values = [str(v) for v in facet.enumeration]
        shown = ", ".join(values[:15]) + (", ..." if len(values) > 15 else "")
        return problem(
            "xsd-not-in-code-list",
            f"the {what} '{value}' is not in the code list.",
            _CODE_LIST_HINTS.get(what, f"Use one of: {shown}."),
        )
    type_name = _type_label(getattr(facet, "parent", None) or facet)
    if isinstance(facet, XsdPatternFacets):
        if what in _PATTERN_HINTS or type_name is None:
            return problem(
                "xsd-invalid-value",
                f"the {what} '{value}' is not in the expected format.",
                _PATTERN_HINTS.get(what, "Check the format of this value against the schema."),
            )
        return problem(
            "xsd-invalid-value",
            f"the {what} '{value}' is not a valid {type_name}.",
            f"Give a {type_name}.",
        )
    if isinstance(facet, XsdMaxLengthFacet | XsdMinLengthFacet | XsdLengthFacet):
        too_long = isinstance(facet, XsdMaxLengthFacet) or (
            isinstance(facet, XsdLengthFacet) and len(value) > int(facet.value or 0)
        )
        return problem(
            "xsd-invalid-value",
            f"the {what} is {len(value)} characters long; "
            f"{'at most' if too_long else 'at least'} {facet.value} are allowed.",
            "Shorten or complete the value." if too_long else "Fill in a value.",
        )
    if isinstance(facet, XsdFacet):
        kind = _local(facet.elem.tag)
        return problem("xsd-invalid-value", f"the {what} '{value}' is out of range ({kind}).", None)
    shown_type = type_name or _words(getattr(facet, "local_name", None) or "value")
    return problem(
        "xsd-invalid-value",
        f"the {what} '{value}' is not a valid {shown_type}.",
        f"Give a {shown_type}.",
    )


# --- explaining a refusal from libxml2's error log (large documents) ---------------------

_LOG_CODES: Final = {
    "SCHEMAV_CVC_ENUMERATION_VALID": "xsd-not-in-code-list",
    "SCHEMAV_CVC_COMPLEX_TYPE_4": "xsd-missing-attribute",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "xsd-unexpected-attribute",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "xsd-unexpected-attribute",
    "SCHEMAV_CVC_IDC": "xsd-duplicate-key",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "xsd-unexpected-text",
    "SCHEMAV_CVC_ELT_1": "xsd-unexpected-element",
}
_LOG_VALUE_ERRORS: Final = frozenset(
    {
        "SCHEMAV_CVC_PATTERN_VALID",
        "SCHEMAV_CVC_LENGTH_VALID",
        "SCHEMAV_CVC_MINLENGTH_VALID",
        "SCHEMAV_CVC_MAXLENGTH_VALID",
        "SCHEMAV_CVC_MININCLUSIVE_VALID",
        "SCHEMAV_CVC_MAXINCLUSIVE_VALID",
        "SCHEMAV_CVC_MINEXCLUSIVE_VALID",
        "SCHEMAV_CVC_MAXEXCLUSIVE_VALID",
        "SCHEMAV_CVC_TOTALDIGITS_VALID",
        "SCHEMAV_CVC_FRACTIONDIGITS_VALID",
        "SCHEMAV_CVC_DATATYPE_VALID_1_2_1",
        "SCHEMAV_CVC_DATATYPE_VALID_1_2_2",
        "SCHEMAV_CVC_DATATYPE_VALID_1_2_3",
        "SCHEMAV_CVC_TYPE_3_1_1",
        "SCHEMAV_CVC_ATTRIBUTE_3",
        "SCHEMAV_CVC_FACET_VALID",
        "SCHEMAV_CVC_ENUMERATION_VALID",
    }
)


def _log_code(entry: etree._LogEntry) -> str:
    if code := _LOG_CODES.get(entry.type_name):
        return code
    if entry.type_name in _LOG_VALUE_ERRORS:
        return "xsd-invalid-value"
    if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        # libxml2 gives one error type to both; its message is the only way to tell them apart
        missing = "Missing child" in entry.message
        return "xsd-missing-element" if missing else "xsd-unexpected-element"
    return "xsd-invalid"


def log_findings(error_log: etree._ListErrorLog, doc_type: DocumentType) -> tuple[Finding, ...]:
    """Findings from libxml2's error log: the code from its error type, its own message.

    Used for documents too large to explain with xmlschema: codes, boxes, paths and lines are
    those the detailed explanation gives; the message is libxml2's, without namespaces.
    """
    findings: list[Finding] = []
    seen: set[tuple[int, str | None]] = set()
    for entry in error_log:
        path = entry.path or None
        key = (entry.line, path)
        if entry.type_name in _LOG_VALUE_ERRORS and key in seen:
            continue  # libxml2 repeats a facet failure as a type failure; report it once
        seen.add(key)
        segments = _segments(path)
        names = [name for name, _ in segments]
        items = [index for name, index in segments if name == "GovernmentAgencyGoodsItem"]
        item = (items[0] or 1) if items else None
        box = form_d_box(names) if doc_type is DocumentType.FORM_D else None
        text = where(box, item) + _NS_RE.sub("", entry.message).strip()
        findings.append(
            Finding(
                severity="error",
                code=_log_code(entry),
                message=text[:1].upper() + text[1:],
                box=box,
                path=path,
                line=entry.line or None,
                hint="The schema validator's own words: this document is too large for a "
                "fuller explanation.",
            )
        )
    return tuple(findings)
