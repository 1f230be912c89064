"""Small edits of a sample document, shared by the generator and the committed sample set.

One namespace map for the XPath of every edit (the prefixes ``fd``, ``fdx``, ``cm``, ``ac``,
``rs``, ``rc``) and one set of edit helpers. An edit is a function of the document root and a
context: the generator passes the facts of the document it made (so a value can depend on the
sender, the receiver or the day), the committed sample set passes ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lxml import etree

NAMESPACES = {
    "fd": "urn:asw-gw:datamodel:EFORMD-DMS:1",
    "fdx": "urn:asw-gw:datamodel:EFORMD-EXT:1",
    "cm": "urn:asw-gw:datamodel:Common_DS:1",
    "ac": "urn:asw-gw:datamodel:ACDD-DMS:1",
    "rs": "urn:asw-gw:datamodel:RES-DMS:1",
    "rc": "urn:asw-gw:datamodel:RCT-DMS:1",
    "rt": "urn:asw-gw:datamodel:RTR-DMS:1",
    "rj": "urn:asw-gw:datamodel:REJ-DMS:1",
    "vf": "urn:asw-gw:datamodel:VER-DMS:1",
    "dt": "urn:asw-gw:datamodel:ODT-DMS:1",
    "cr": "urn:asw-gw:datamodel:CEREG-DMS:1",
    "od": "urn:asw-gw:datamodel:ODECL-DMS:1",
    "ae": "urn:asw-gw:datamodel:AEOSTAT-DMS:1",
    "cl": "urn:asw-gw:datamodel:CELOOKUP-DMS:1",
    "aq": "urn:asw-gw:datamodel:AEOQUERY-DMS:1",
}
_DECLARATIONS = " ".join(f'xmlns:{p}="{ns}"' for p, ns in NAMESPACES.items())

C = TypeVar("C")
Edit = Callable[[etree._Element, C], None]


def nodes(root: etree._Element, path: str) -> list[etree._Element]:
    """The elements at ``path``; ``ValueError`` when there is none."""
    found = root.xpath(path, namespaces=NAMESPACES)
    candidates = found if isinstance(found, list) else []
    elements = [n for n in candidates if isinstance(n, etree._Element)]
    if not elements:
        raise ValueError(f"the document has nothing at {path}")
    return elements


def set_text(path: str, value: str | Callable[[C], str]) -> Edit[C]:
    """Set the text of the first element at ``path`` to a value, or to one made from the context."""

    def edit(root: etree._Element, context: C) -> None:
        nodes(root, path)[0].text = value(context) if callable(value) else value

    return edit


def set_attribute(path: str, name: str, value: str | None) -> Edit[C]:
    """Set attribute ``name`` of the first element at ``path``; ``None`` removes it."""

    def edit(root: etree._Element, context: C) -> None:
        node = nodes(root, path)[0]
        if value is None:
            del node.attrib[name]
        else:
            node.set(name, value)

    return edit


def drop(path: str) -> Edit[C]:
    """Remove the first element at ``path`` (it must be there)."""

    def edit(root: etree._Element, context: C) -> None:
        node = nodes(root, path)[0]
        parent = node.getparent()
        if parent is None:
            raise ValueError(f"cannot remove the root element at {path}")
        parent.remove(node)

    return edit


def drop_if_present(path: str) -> Edit[C]:
    """Remove every element at ``path``, if any."""

    def edit(root: etree._Element, context: C) -> None:
        found = root.xpath(path, namespaces=NAMESPACES)
        for node in found if isinstance(found, list) else []:
            parent = node.getparent() if isinstance(node, etree._Element) else None
            if parent is not None and isinstance(node, etree._Element):
                parent.remove(node)

    return edit


def insert_after(path: str, xml: str) -> Edit[C]:
    """Insert ``xml`` (elements written with the prefixes above) after the element at ``path``."""

    def edit(root: etree._Element, context: C) -> None:
        wrapper = etree.fromstring(f"<w {_DECLARATIONS}>{xml}</w>")
        anchor = nodes(root, path)[0]
        for new in reversed(list(wrapper)):
            anchor.addnext(new)

    return edit


def all_of(*edits: Edit[C]) -> Edit[C]:
    """Apply the edits in order."""

    def edit(root: etree._Element, context: C) -> None:
        for one in edits:
            one(root, context)

    return edit
