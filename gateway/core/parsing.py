"""The one hardened XML parser every XML the gateway reads goes through.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document
that declares a DTD (internal or external), uses XInclude or carries processing instructions
is refused outright rather than parsed around. libxml2's own limits (depth 256, node sizes)
stay on, and the gateway adds its own byte and depth limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.errors import ForbiddenXml, MalformedXml, PayloadTooLarge, XmlLimitExceeded

XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)

_DOCTYPE_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseLimits:
    """Bounds applied to every XML document before and while it is parsed."""

    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


_PARSER = _new_parser()


def hardened_parser() -> etree.XMLParser:
    """The parser behind ``parse``, for libraries that re-parse what the gateway already read.

    signxml serialises and re-parses the document several times while verifying; handing it
    this parser keeps one guard (no DTD, no entities, no network) on every one of those parses.
    """
    return _PARSER


def parse(data: bytes, limits: ParseLimits | None = None) -> etree._Element:
    """Parse ``data`` into an element tree, refusing anything hostile or oversized.

    Raises ``PayloadTooLarge``, ``MalformedXml``, ``ForbiddenXml`` or ``XmlLimitExceeded``.
    """
    limits = limits or ParseLimits()
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The document is {len(data):,} bytes; this gateway accepts at most "
            f"{limits.max_bytes:,} bytes."
        )
    if not data.strip():
        raise MalformedXml("The message body is empty; an XML document was expected.")
    # A DTD is never legitimate in an exchange document. Refusing on sight (before libxml2
    # reads the internal subset) keeps entity bombs from costing anything at all.
    head = data[:4096]
    if any(marker in head for marker in _DOCTYPE_MARKERS) or b"<!DOCTYPE" in data:
        raise ForbiddenXml(
            "The document declares a DTD or entities. Exchange documents must not contain "
            "<!DOCTYPE> or <!ENTITY> declarations."
        )
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        if "Excessive depth" in message or "limit exceeded" in message or "HUGE" in message:
            raise XmlLimitExceeded(
                f"The document exceeds the XML parser's limits: {message}"
            ) from exc
        raise MalformedXml(f"The message is not well-formed XML: {message}") from exc
    _check_tree(root, limits)
    return root


_FORBIDDEN_NODES = (
    etree.Entity,
    etree.ProcessingInstruction,
    *(f"{{{ns}}}*" for ns in sorted(XINCLUDE_NAMESPACES)),
)
_depth_probes: dict[int, etree.XPath] = {}


def _deeper_than(root: etree._Element, depth: int) -> bool:
    probe = _depth_probes.get(depth)
    if probe is None:
        probe = _depth_probes[depth] = etree.XPath("boolean(/*" + "/*" * depth + ")")
    return bool(probe(root))


def _check_tree(root: etree._Element, limits: ParseLimits) -> None:
    docinfo = root.getroottree().docinfo
    doctype: str = docinfo.doctype  # type: ignore[attr-defined]  # lxml-stubs lacks doctype
    dtds: tuple[object, ...] = (docinfo.internalDTD, docinfo.externalDTD)
    if doctype or any(dtd is not None for dtd in dtds):
        raise ForbiddenXml("The document declares a DTD, which exchange documents must not do.")
    # Processing instructions before or after the root element (xml-stylesheet, say) are
    # siblings of the root, not descendants.
    outside = (*root.itersiblings(preceding=True), *root.itersiblings())
    if any(isinstance(node, etree._ProcessingInstruction) for node in outside):
        raise ForbiddenXml("The document contains a processing instruction.")
    # The filtered iteration runs in C: about 0.2 ms for 40,000 elements.
    for node in root.iter(*_FORBIDDEN_NODES):
        if isinstance(node, etree._Entity):
            raise ForbiddenXml("The document contains an entity reference.")
        if isinstance(node, etree._ProcessingInstruction):
            raise ForbiddenXml("The document contains a processing instruction.")
        raise ForbiddenXml("The document uses XInclude, which the gateway never processes.")
    if _deeper_than(root, limits.max_depth):
        raise XmlLimitExceeded(f"The document is nested more than {limits.max_depth} levels deep.")
