"""The official trade code lists as data: UN/ECE Rec 19, 20 and 21, ISO 4217 and UN/LOCODE.

The lists are the CSV files in ``gateway/data/codelists`` (sources and versions in the README
there), read once on first use. Two ways they reach a document:

- Lists where an unknown code is an error and the list is short (Rec 19 transport modes, 10
  codes; Rec 21 package types, 415; ISO 4217 currencies, 178) are generated into the XSD
  code-list schemas (``python -m gateway.codelist_xsd`` writes ``xsd/codelists``), so libxml2
  enforces them.
- Rec 20 units (2,542 codes with the package units) are an error when unknown too, but a
  business-rule lookup (``unit-code-unknown``): libxml2 compares an enumeration value by value,
  and 2,542 of them made the XSD pass of a large Form D an order of magnitude slower.
  The XSD keeps their form, ``UNIT_PATTERN``.
- What is only a warning is a business-rule lookup too: a Rec 20 unit marked deleted or
  deprecated, and UN/LOCODEs (the list changes twice a year, so an unknown one is not refused).

``REC19``, ``REC20``, ``REC21``, ``ISO4217`` and ``UNLOCODE`` name the edition of each list; it
goes into each generated schema's annotation and into the hints of the findings that use a list.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Final

REC19: Final = "UN/ECE Recommendation 19 (2001)"
REC20: Final = "UN/ECE Recommendation 20, Revision 17 (2021)"
REC21: Final = "UN/ECE Recommendation 21, Revision 12 (2021), with the one-digit codes of Annex I"
ISO4217: Final = "ISO 4217 List One (state of 2026-02-01)"
UNLOCODE: Final = "UN/LOCODE 2024-2 (Brunei: 2023-2)"

# The form of every Rec 20 code (and X plus a Rec 21 code): the XSD's unit type.
UNIT_PATTERN: Final = "[0-9A-Z]{2,3}"

# Rec 20 status legend: X = marked as deleted, D = deprecated (not recommended by BIPM).
REC20_STATUS_WORDS: Final = {"X": "deleted", "D": "deprecated"}


@dataclass(frozen=True, slots=True)
class Code:
    """One entry of a code list: its code, name and status ('' = current)."""

    code: str
    name: str
    status: str = ""


@dataclass(frozen=True, slots=True)
class Location:
    """One UN/LOCODE entry (``code`` without the space, e.g. ``SGSIN``)."""

    code: str
    country: str
    name: str
    function: str


def rows(name: str) -> Iterator[dict[str, str]]:
    """The rows of ``gateway/data/codelists/name`` (a UTF-8 CSV with a header line)."""
    data = resources.files("gateway").joinpath("data", "codelists", name).read_bytes()
    yield from csv.DictReader(io.StringIO(data.decode("utf-8")))


@functools.cache
def transport_modes() -> dict[str, Code]:
    """UN/ECE Rec 19 modes of transport (one digit)."""
    return {r["code"]: Code(r["code"], r["name"]) for r in rows("unece_rec19_transport_modes.csv")}


@functools.cache
def package_types() -> dict[str, Code]:
    """UN/ECE Rec 21 package types: the two-character codes and Annex I's one-digit codes."""
    codes = {
        r["code"]: Code(r["code"], r["name"], r["status"])
        for r in rows("unece_rec21_package_types.csv")
    }
    for r in rows("unece_rec21_one_digit_codes.csv"):
        if r["code_set"] == "package_type" and not r["name"].startswith("("):
            codes.setdefault(r["code"], Code(r["code"], r["name"]))
    return codes


@functools.cache
def units() -> dict[str, Code]:
    """UN/ECE Rec 20 units, plus Rec 21 package types as units (``X`` + code, Rec 20 note 2)."""
    codes = {
        r["code"]: Code(
            r["code"], r["name"], r["status"] if r["status"] in REC20_STATUS_WORDS else ""
        )
        for r in rows("unece_rec20_units.csv")
    }
    for pkg in package_types().values():
        if len(pkg.code) == 2:  # X00-XZZ are reserved for the two-character package codes
            codes.setdefault("X" + pkg.code, Code("X" + pkg.code, pkg.name, pkg.status))
    return codes


@functools.cache
def retired_units() -> dict[str, Code]:
    """The Rec 20 units marked deleted (X) or deprecated (D): valid, but a warning."""
    return {code: unit for code, unit in units().items() if unit.status in REC20_STATUS_WORDS}


@functools.cache
def current_units() -> frozenset[str]:
    """The Rec 20 codes (and package units) in current use: the rules' fast path."""
    return frozenset(
        code for code, unit in units().items() if unit.status not in REC20_STATUS_WORDS
    )


@functools.cache
def currencies() -> dict[str, Code]:
    """ISO 4217 alphabetic currency and funds codes in use."""
    return {r["code"]: Code(r["code"], r["name"]) for r in rows("iso4217_active.csv")}


@functools.cache
def locations() -> dict[str, Location]:
    """UN/LOCODEs of the ASEAN Member States and Timor-Leste."""
    found: dict[str, Location] = {}
    for name in ("unlocode_asean.csv", "unlocode_tl.csv"):
        for r in rows(name):
            code = r["locode"]
            found.setdefault(code, Location(code, r["country"], r["name"], r["function"]))
    return found


@functools.cache
def locode_countries() -> frozenset[str]:
    """The countries whose UN/LOCODEs the gateway holds (an unknown code is told only there)."""
    return frozenset(loc.country for loc in locations().values())
