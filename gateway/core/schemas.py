"""The document schemas: where they are, compiling them, and reading libxml2's complaints.

Schemas are compiled once with libxml2 (``lxml.etree.XMLSchema``), which is the hot path.
When a document fails, each libxml2 error becomes a :class:`Finding` with a stable ``xsd-*``
code, the Form D box where there is one, and a message written for a trade officer instead
of libxml2's ``Element '{urn:...}ID': [facet 'pattern'] ...``.

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
xsd-invalid                any other schema violation (libxml2's message, cleaned)
=========================  =============================================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.errors import Finding

SCHEMA_FILES: Final[dict[DocumentType, str]] = {
    DocumentType.FORM_D: "formd/formd-1.xsd",
    DocumentType.ACDD: "acdd/acdd-1.xsd",
    DocumentType.CUSTOMS_RESPONSE: "response/response-1.xsd",
    DocumentType.DELIVERY_RECEIPT: "receipt/receipt-1.xsd",
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

_ELEMENT_RE: Final = re.compile(
    r"^Element '(?:\{[^}]*\})?([^']+)'(?:, attribute '([^']+)')?: (.*)$", re.DOTALL
)
_ENUM_RE: Final = re.compile(
    r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set \{(.*)\}"
)
_FACET_RE: Final = re.compile(r"\[facet '(\w+)'\] (.*)")
_VALUE_RE: Final = re.compile(r"The value '(.*?)'")
_LENGTH_RE: Final = re.compile(
    r"length of '(\d+)'; this (?:exceeds|underruns) the allowed \w+ length of '(\d+)'"
)
_ATOMIC_RE: Final = re.compile(
    r"'(.*)' is not a valid value of the (?:atomic|list|union) type '(?:\{[^}]*\})?([^']+)'"
)
_EXPECTED_RE: Final = re.compile(r"Expected is (?:one of )?\( (.*) \)")
_ATTRIBUTE_RE: Final = re.compile(r"The attribute '([^']+)'")
_KEY_RE: Final = re.compile(r"Duplicate key-sequence \[(.*?)\]")
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


def _names_list(text: str) -> str:
    return ", ".join(n.strip() for n in _NS_RE.sub("", text).split(","))


def _explain(body: str, what: str) -> tuple[str, str, str | None]:  # noqa: PLR0911
    """(code, message tail, hint) for one libxml2 message body about ``what``."""
    if enum := _ENUM_RE.search(body):
        values = [v.strip().strip("'") for v in enum.group(2).split(",")]
        shown = ", ".join(values[:15]) + (", ..." if len(values) > 15 else "")
        return (
            "xsd-not-in-code-list",
            f"the {what} '{enum.group(1)}' is not in the code list.",
            _CODE_LIST_HINTS.get(what, f"Use one of: {shown}."),
        )
    if facet := _FACET_RE.search(body):
        kind = facet.group(1)
        value = _VALUE_RE.search(body)
        shown = f" '{value.group(1)}'" if value else ""
        if kind == "pattern":
            return (
                "xsd-invalid-value",
                f"the {what}{shown} is not in the expected format.",
                _PATTERN_HINTS.get(what, "Check the format of this value against the schema."),
            )
        if length := _LENGTH_RE.search(body):
            return (
                "xsd-invalid-value",
                f"the {what} is {length.group(1)} characters long; "
                f"{'at most' if 'exceeds' in body else 'at least'} {length.group(2)} are allowed.",
                "Shorten or complete the value." if "exceeds" in body else "Fill in a value.",
            )
        return ("xsd-invalid-value", f"the {what}{shown} is out of range ({kind}).", None)
    if atomic := _ATOMIC_RE.search(body):
        type_name = _TYPE_NAMES.get(atomic.group(2), atomic.group(2))
        bad = atomic.group(1)
        return (
            "xsd-invalid-value",
            f"the {what} '{bad}' is not a valid {type_name}.",
            f"Give a {type_name}.",
        )
    if "Missing child element" in body:
        expected = _EXPECTED_RE.search(body)
        missing = _names_list(expected.group(1)) if expected else "a required element"
        return (
            "xsd-missing-element",
            f"the {what} is incomplete: {missing} is missing.",
            f"Add {missing}.",
        )
    if "is not expected" in body:
        expected = _EXPECTED_RE.search(body)
        if expected is None:
            return (
                "xsd-unexpected-element",
                f"the element {what} is not allowed here.",
                "Remove the element or check its name.",
            )
        names = _names_list(expected.group(1))
        return (
            "xsd-unexpected-element",
            f"found the {what} where {names} was expected: {names} may be missing, or "
            f"the {what} misplaced or misspelt.",
            f"Add {names} before it, or fix the element's name or order.",
        )
    if "is required but missing" in body and (attribute := _ATTRIBUTE_RE.search(body)):
        name = attribute.group(1)
        return (
            "xsd-missing-attribute",
            f"the {what} has no {_LABELS.get(name, name)} ({name}).",
            f"Add the {name} attribute.",
        )
    if "is not allowed" in body and (attribute := _ATTRIBUTE_RE.search(body)):
        return (
            "xsd-unexpected-attribute",
            f"the attribute {attribute.group(1)} is not allowed on the {what}.",
            "Remove the attribute.",
        )
    if key := _KEY_RE.search(body):
        return (
            "xsd-duplicate-key",
            f"the item number {key.group(1).strip(chr(39))} is used more than once.",
            "Number the goods items 1, 2, 3, ... without repeats.",
        )
    if "Character content other than whitespace" in body:
        return (
            "xsd-unexpected-text",
            f"the {what} contains text where only elements belong.",
            "Remove the stray text.",
        )
    return ("xsd-invalid", f"{what}: {_NS_RE.sub('', body).rstrip('.')}.", None)


def schema_findings(error_log: etree._ListErrorLog, doc_type: DocumentType) -> tuple[Finding, ...]:
    """Translate libxml2's validation errors into findings, one per distinct problem."""
    findings: list[Finding] = []
    seen: set[tuple[int, str | None, str | None]] = set()
    for entry in error_log:
        match = _ELEMENT_RE.match(entry.message)
        attribute = match.group(2) if match else None
        body = match.group(3) if match else entry.message
        path = entry.path or None
        key = (entry.line, path, attribute)
        is_value_error = "[facet" in body or "is not a valid value" in body
        if is_value_error and key in seen:
            continue  # libxml2 repeats a facet failure as a type failure; report it once
        seen.add(key)
        segments = _segments(path)
        names = [name for name, _ in segments]
        if "Duplicate key-sequence" in body:
            names = [*names, "SequenceNumeric"]
        items = [index for name, index in segments if name == "GovernmentAgencyGoodsItem"]
        item = (items[0] or 1) if items else None
        box = form_d_box(names) if doc_type is DocumentType.FORM_D else None
        code, tail, hint = _explain(body, label(names, attribute))
        findings.append(
            Finding(
                severity="error",
                code=code,
                message=(where(box, item) + tail)[:1].upper() + (where(box, item) + tail)[1:],
                box=box,
                path=path,
                line=entry.line or None,
                hint=hint,
            )
        )
    return tuple(findings)
