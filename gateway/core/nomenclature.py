"""The Harmonized System nomenclature as data, by edition, for Box 7's HS code.

Each edition is a CSV in ``gateway/data/codelists`` with its chapters, headings and 6-digit
subheadings, and the date it entered into force. The edition in force on a certificate's date is
the latest whose start is not after that date; adding HS 2028 is one more ``Edition`` line and
its CSV. A certificate dated before the oldest edition held is not checked (``edition_on`` gives
``None``).

Codes: the first six digits must be an HS subheading; longer national codes (8-digit AHTN,
10-digit national tariff lines) are accepted when their first six digits exist, because the
gateway does not hold every member's tariff. Dots are separators and dropped (``8471.30`` is
the HS's printed form, ``8471.30.20`` AHTN's); the Form D schema refuses spaces and letters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import Final

from gateway.core.code_lists import rows


@dataclass(frozen=True, slots=True)
class Edition:
    """One HS edition: its name, the day it entered into force and its data file."""

    name: str
    in_force_from: date
    file: str


EDITIONS: Final = (Edition("HS 2022", date(2022, 1, 1), "hs2022_nomenclature.csv"),)


@dataclass(frozen=True, slots=True)
class Nomenclature:
    """The chapters (2 digits), headings (4) and subheadings (6) of one edition."""

    edition: Edition
    chapters: frozenset[str]
    headings: frozenset[str]
    subheadings: frozenset[str]

    def missing_level(self, code: str) -> str | None:
        """The first level of ``code`` (digits only, at least 6) that does not exist, or
        ``None`` when its subheading exists: ``"chapter"``, ``"heading"`` or ``"subheading"``."""
        if code[:6] in self.subheadings:
            return None
        if code[:2] not in self.chapters:
            return "chapter"
        if code[:4] not in self.headings:
            return "heading"
        return "subheading"


def edition_on(day: date) -> Edition | None:
    """The HS edition in force on ``day`` (``None`` before the oldest edition held)."""
    current: Edition | None = None
    for edition in EDITIONS:
        if edition.in_force_from <= day and (
            current is None or edition.in_force_from > current.in_force_from
        ):
            current = edition
    return current


@functools.cache
def load(edition: Edition) -> Nomenclature:
    """The codes of ``edition``, read once."""
    levels: dict[str, set[str]] = {"chapter": set(), "heading": set(), "subheading": set()}
    for row in rows(edition.file):
        found = levels.get(row["level"])
        if found is not None:
            found.add(row["code"])
    return Nomenclature(
        edition,
        frozenset(levels["chapter"]),
        frozenset(levels["heading"]),
        frozenset(levels["subheading"]),
    )


def normalise(code: str) -> str:
    """``code`` without its dots (``8471.30.20`` -> ``84713020``)."""
    return code.replace(".", "")
