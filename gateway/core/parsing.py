"""The one hardened XML parser every XML the gateway reads goes through.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document
that declares a DTD (internal or external), uses XInclude or carries processing instructions
is refused outright rather than parsed around. libxml2's own limits (depth 256, node sizes)
stay on, and the gateway adds its own byte and depth limits.

Comments inside the root element are refused too (issue 12, section 3). A comment inside a
value (``MY26-CO-12345<!---->67``) makes readers disagree: the XSD and XPath ``string()`` read
``MY26-CO-1234567``, an element's first text node (lxml ``.text``, DOM ``firstChild``) reads
``MY26-CO-12345``. Refusing, rather than removing at parse, keeps the bytes stored and
delivered free of the ambiguity for every receiver's parser, not only ours. Comments between
elements are refused as well: they carry no value, but they are never signed (exclusive C14N
drops them), and a document the gateway signs on a party's behalf would otherwise go out with
unsigned content that a strict receiving gateway refuses. CDATA sections are merged into the
text by the parser, and entities and processing instructions are refused, so once ``parse``
returns, every element's ``.text`` is its whole direct text. Comments before or after the root
element are outside any value and left to the signature rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.errors import ForbiddenXml, MalformedXml, PayloadTooLarge, XmlLimitExceeded

XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)

# Refused on sight: ``<!DOCTYPE`` anywhere, ``<!ENTITY`` within the first 4 KB.
_DOCTYPE = b"<!DOCTYPE"
_ENTITY = b"<!ENTITY"
_ENTITY_WINDOW = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseLimits:
    """Bounds applied to every XML document before and while it is parsed."""

    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    # Tags (``<`` characters) counted before parsing: a parsed tree costs far more memory per
    # element than its markup, so 8 MiB of ``<a/>`` would be huge before any check could
    # refuse it. 150,000 is four times the tags of the 1 MB sample Form D (1,085 goods items).
    max_markup: int = 150_000


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
_DEFAULT_LIMITS = ParseLimits()


def hardened_parser() -> etree.XMLParser:
    """The parser behind ``parse``, for re-reading bytes the gateway itself produced.

    Signature verification re-reads the canonical bytes it digested (``gateway.core.signatures``);
    using this parser keeps one guard (no DTD, no entities, no network) on that parse too.
    """
    return _PARSER


def _declares_dtd(data: bytes) -> bool:
    """True when ``data`` holds ``<!DOCTYPE`` anywhere or ``<!ENTITY`` in its first 4 KB.

    Both markers contain ``!``; a single ``memchr`` for it spares the two (costlier) substring
    searches for the many documents that have no ``!`` at all, and the searches start at the
    first ``!`` otherwise.
    """
    bang = data.find(b"!")
    if bang < 0:
        return False
    start = max(bang - 1, 0)
    return data.find(_DOCTYPE, start) >= 0 or data.find(_ENTITY, start, _ENTITY_WINDOW) >= 0


def parse(data: bytes, limits: ParseLimits | None = None) -> etree._Element:
    """Parse ``data`` into an element tree, refusing anything hostile or oversized.

    Raises ``PayloadTooLarge``, ``MalformedXml``, ``ForbiddenXml`` or ``XmlLimitExceeded``.
    """
    limits = limits or _DEFAULT_LIMITS
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The document is {len(data):,} bytes; this gateway accepts at most "
            f"{limits.max_bytes:,} bytes."
        )
    if not data or data.isspace():  # the same test as ``not data.strip()``, without a copy
        raise MalformedXml("The message body is empty; an XML document was expected.")
    # A DTD is never legitimate in an exchange document. Refusing on sight (before libxml2
    # reads the internal subset) keeps entity bombs from costing anything at all.
    if _declares_dtd(data):
        raise ForbiddenXml(
            "The document declares a DTD or entities. Exchange documents must not contain "
            "<!DOCTYPE> or <!ENTITY> declarations."
        )
    markup = data.count(b"<")  # at memchr speed
    if markup > limits.max_markup:
        raise XmlLimitExceeded(
            f"The document has {markup:,} tags; this gateway accepts at most "
            f"{limits.max_markup:,} (four times a Form D of a thousand goods items). Split the "
            "shipment over several documents."
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
    etree.Comment,
    *(f"{{{ns}}}*" for ns in sorted(XINCLUDE_NAMESPACES)),
)
_depth_probes: dict[int, etree.XPath] = {}


def _deeper_than(root: etree._Element, depth: int) -> bool:
    """True when an element lies more than ``depth`` levels below the document node.

    One compiled XPath (``boolean(/*/*/.../*)``) walks the levels in C; counting ancestors or
    nesting predicates costs several times as much (``bench/bench_validation.py``).
    """
    probe = _depth_probes.get(depth)
    if probe is None:
        probe = _depth_probes[depth] = etree.XPath(
            "boolean(/*" + "/*" * depth + ")", regexp=False, smart_strings=False
        )
    return bool(probe(root))


def _has_pi_beside(root: etree._Element) -> bool:
    """True when a processing instruction (xml-stylesheet, say) precedes or follows the root.

    Those are siblings of the root, not descendants; walking them one by one costs nothing for
    the usual document that has none.
    """
    node = root.getprevious()
    while node is not None:
        if isinstance(node, etree._ProcessingInstruction):
            return True
        node = node.getprevious()
    node = root.getnext()
    while node is not None:
        if isinstance(node, etree._ProcessingInstruction):
            return True
        node = node.getnext()
    return False


def _comment_refusal(comment: etree._Element) -> str:
    parent = comment.getparent()
    name = etree.QName(parent).localname if parent is not None else "?"
    return (
        f"The document has an XML comment in element {name} (line {comment.sourceline}). "
        "Exchange documents must not contain comments: they are not covered by the signature, "
        "and inside a value different software reads the value differently. Remove the "
        "comments and send the document again."
    )


def _check_tree(root: etree._Element, limits: ParseLimits) -> None:
    docinfo = root.getroottree().docinfo
    doctype: str = docinfo.doctype  # type: ignore[attr-defined]  # lxml-stubs lacks doctype
    dtds: tuple[object, ...] = (docinfo.internalDTD, docinfo.externalDTD)  # stubs: never None
    if doctype or dtds != (None, None):
        raise ForbiddenXml("The document declares a DTD, which exchange documents must not do.")
    if _has_pi_beside(root):
        raise ForbiddenXml("The document contains a processing instruction.")
    # The filtered iteration runs in C.
    for node in root.iter(*_FORBIDDEN_NODES):
        if isinstance(node, etree._Comment):
            raise ForbiddenXml(_comment_refusal(node))
        if isinstance(node, etree._Entity):
            raise ForbiddenXml("The document contains an entity reference.")
        if isinstance(node, etree._ProcessingInstruction):
            raise ForbiddenXml("The document contains a processing instruction.")
        raise ForbiddenXml("The document uses XInclude, which the gateway never processes.")
    if _deeper_than(root, limits.max_depth):
        raise XmlLimitExceeded(f"The document is nested more than {limits.max_depth} levels deep.")
