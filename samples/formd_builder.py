"""Build e-Form D documents from plain data, for the sample generator (not used at run time).

The builders live in the installed package (``gateway.samplegen``), which ``asw-gateway samples
generate`` uses too; this module re-exports them for ``generate.py`` and ``formd_variants.py``.
"""

from __future__ import annotations

from gateway.samplegen import (
    FLAG_NAMES,
    NS,
    FormD,
    Item,
    Party,
    build,
    clark_name,
    header,
    serialise,
    sub,
)

__all__ = [
    "FLAG_NAMES",
    "NS",
    "FormD",
    "Item",
    "Party",
    "build",
    "clark_name",
    "header",
    "serialise",
    "sub",
]
