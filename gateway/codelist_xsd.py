"""Generate the XSD code-list schemas in ``xsd/codelists`` from the official lists (data).

    python -m gateway.codelist_xsd [XSD_DIR]     # default: xsd

Writes the lists where an unknown code is an error, as enumerations libxml2 enforces: UN/ECE
Rec 19 (transport modes), Rec 21 (package types, with Annex I's one-digit codes), ISO 4217
(currencies) and the Member States of the parties plan. Rec 20 (units) gets only its code form
as a pattern: its 2,542 codes are checked by business rule unit-code-unknown, because libxml2
tries an enumeration value by value (``gateway.core.code_lists`` says what that cost).

Each schema names its source and edition in its comment, in ``xs:schema/xs:annotation`` and in
``@version``. The namespaces and type names stay those of major version 1, so no document
schema changes. ``tests/core/test_code_lists.py`` fails when a committed schema differs from
what this module generates.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from gateway.core import code_lists
from gateway.core.parties import default_parties


@dataclass(frozen=True, slots=True)
class CodeListSchema:
    """One generated schema: file, namespace, type, version and its (code, text) values."""

    file: str
    namespace: str
    type_name: str
    title: str
    version: str
    source: str
    values: tuple[tuple[str, str], ...]
    first: tuple[str, ...] = ()  # the codes most documents use, tried first (see render)
    pattern: str = ""  # instead of the enumeration: the form only, the rules check the list


# libxml2 tries an enumeration's values in document order until one matches, so the codes
# most Form D and ACDD use come first (the order means nothing else), which keeps the XSD pass
# as fast as with the old short lists (figures in docs/performance.md).
COMMON_PACKAGE_TYPES = (
    "CT", "PX", "BX", "PK", "BG", "DR", "CS", "CR", "PL", "BE", "BL", "CL", "RO", "BA", "SA",
    "NE", "CN", "BO", "JR", "TN", "FE", "JB", "WA", "43", "1A", "4G", "5H",
)  # fmt: skip
COMMON_CURRENCIES = (
    "USD", "EUR", "SGD", "MYR", "THB", "IDR", "VND", "PHP", "BND", "KHR", "LAK", "MMK", "JPY",
    "CNY", "HKD", "KRW", "AUD", "GBP", "INR", "CHF",
)  # fmt: skip


def _status_note(status: str) -> str:
    return {"X": " (marked as deleted)", "D": " (deprecated)"}.get(status, "")


def schemas() -> tuple[CodeListSchema, ...]:
    """Every generated code-list schema, from the data."""
    parties = default_parties()
    return (
        CodeListSchema(
            "transport-mode-1.xsd",
            "urn:asw-gw:codelist:UNECERec19TransportModeCode:1",
            "TransportModeCodeContentType",
            "UN/ECE Recommendation 19, mode of transport (1 digit), the complete list.",
            "2001",
            code_lists.REC19,
            tuple((c.code, c.name) for c in code_lists.transport_modes().values()),
        ),
        CodeListSchema(
            "package-type-1.xsd",
            "urn:asw-gw:codelist:UNECERec21PackageTypeCode:1",
            "PackageTypeCodeContentType",
            "UN/ECE Recommendation 21, package type codes, the complete list (Annex V/VI) "
            "and the one-digit package type codes of Annex I.",
            "Rev.12",
            code_lists.REC21,
            tuple(
                (c.code, c.name + _status_note(c.status))
                for c in code_lists.package_types().values()
            ),
            first=COMMON_PACKAGE_TYPES,
        ),
        CodeListSchema(
            "unit-1.xsd",
            "urn:asw-gw:codelist:UNECERec20UnitCode:1",
            "UnitCodeContentType",
            "UN/ECE Recommendation 20, units of measure: the code form only. The complete "
            "list (Annex II/III, with X plus a Rec 21 package code, Rec 20 note 2) is checked "
            "by business rules unit-code-unknown (error) and unit-code-retired (warning for "
            "deleted or deprecated units), because a 2,542-value enumeration made libxml2 "
            "ten times slower.",
            "Rev.17",
            code_lists.REC20,
            tuple((c.code, c.name + _status_note(c.status)) for c in code_lists.units().values()),
            pattern=code_lists.UNIT_PATTERN,
        ),
        CodeListSchema(
            "currency-1.xsd",
            "urn:asw-gw:codelist:ISO4217CurrencyCode:1",
            "CurrencyCodeContentType",
            "ISO 4217 alphabetic currency and funds codes in use (List One).",
            "2026-02-01",
            code_lists.ISO4217,
            tuple((c.code, c.name) for c in code_lists.currencies().values()),
            first=COMMON_CURRENCIES,
        ),
        CodeListSchema(
            "member-state-1.xsd",
            "urn:asw-gw:codelist:MemberStateCode:1",
            "MemberStateCodeContentType",
            "ASEAN Member States, ISO 3166-1 alpha-2. Which of them exchange which documents "
            "is the parties plan (gateway/data/parties.toml): a member that takes no document "
            "is refused with receiver-not-enabled.",
            parties.version,
            f"gateway/data/parties.toml, version {parties.version}",
            tuple(
                (m.country, f"{m.name} (member since {m.member_since.isoformat()})")
                for m in parties.members.values()
            ),
        ),
    )


def render(schema: CodeListSchema) -> str:
    """The XSD text of ``schema``."""
    checked = (
        " (checked by business rules; this schema checks their form)" if schema.pattern else ""
    )
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- Code list: {escape(schema.title)}",
        f"     Generated by `python -m gateway.codelist_xsd` from {escape(schema.source)};",
        "     do not edit by hand. Namespace major version 1; the list version in @version.",
        "     Changing the list does not touch any document schema. -->",
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"',
        f'           targetNamespace="{schema.namespace}"',
        f'           elementFormDefault="qualified" version={quoteattr(schema.version)}>',
        f"  <xs:annotation><xs:documentation>{escape(schema.source)}: "
        f"{len(schema.values)} codes{checked}.</xs:documentation></xs:annotation>",
        f'  <xs:simpleType name="{schema.type_name}">',
        '    <xs:restriction base="xs:token">',
    ]
    if schema.pattern:
        lines.append(f"      <xs:pattern value={quoteattr(schema.pattern)}/>")
    else:
        rank = {code: n for n, code in enumerate(schema.first)}
        values = sorted(schema.values, key=lambda v: rank.get(v[0], len(rank)))  # stable
        lines.extend(
            f"      <xs:enumeration value={quoteattr(code)}><xs:annotation><xs:documentation>"
            f"{escape(text)}</xs:documentation></xs:annotation></xs:enumeration>"
            for code, text in values
        )
    lines += ["    </xs:restriction>", "  </xs:simpleType>", "</xs:schema>", ""]
    return "\n".join(lines)


def write(xsd_dir: Path, which: Iterable[CodeListSchema] | None = None) -> list[Path]:
    """Write the generated schemas into ``xsd_dir/codelists``; the paths written."""
    written = []
    for schema in which if which is not None else schemas():
        path = xsd_dir / "codelists" / schema.file
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate the code-list schemas."""
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0] if args else "xsd")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
