"""The hardened parser refuses hostile XML before it costs anything."""

from __future__ import annotations

import pytest

from gateway.core.parsing import ParseLimits, parse
from gateway.errors import ForbiddenXml, MalformedXml, PayloadTooLarge, XmlLimitExceeded

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not xml at all", MalformedXml),
        (b"", MalformedXml),
        (b"<a><b></a>", MalformedXml),
        (BILLION_LAUGHS, ForbiddenXml),
        (EXTERNAL_ENTITY, ForbiddenXml),
        (b"<a><?php echo 1; ?></a>", ForbiddenXml),
        (b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="x"/></a>', ForbiddenXml),
        (b"<a>" * 100 + b"</a>" * 100, XmlLimitExceeded),
        (b"<a>" * 1000 + b"</a>" * 1000, XmlLimitExceeded),
    ],
    ids=[
        "text",
        "empty",
        "unbalanced",
        "billion-laughs",
        "xxe",
        "pi",
        "xinclude",
        "deep",
        "deeper",
    ],
)
def test_hostile_or_broken_input_is_refused(data: bytes, error: type[Exception]) -> None:
    """Each hostile or broken input is refused with its own error class."""
    with pytest.raises(error):
        parse(data)


def test_oversize_body_is_refused_before_parsing() -> None:
    """A body over the byte limit is payload-too-large."""
    with pytest.raises(PayloadTooLarge):
        parse(b"<a>" + b"x" * 2000 + b"</a>", ParseLimits(max_bytes=1000))


def test_too_many_tags_are_refused_before_a_tree_is_built() -> None:
    """A body of many tiny elements is xml-limit-exceeded by its tag count, within the bytes."""
    many = b"<r>" + b"<a/>" * 200_000 + b"</r>"
    with pytest.raises(XmlLimitExceeded, match="200,002 tags"):
        parse(many)
    assert parse(b"<r>" + b"<a/>" * 1000 + b"</r>", ParseLimits(max_markup=1002)).tag == "r"
    with pytest.raises(XmlLimitExceeded):
        parse(b"<r>" + b"<a/>" * 1000 + b"</r>", ParseLimits(max_markup=1001))


def test_ordinary_document_parses() -> None:
    """A plain namespaced document (a comment before the root is outside any value) parses."""
    root = parse(b"<!-- made by x --><r xmlns='urn:x'>\n  <c>1</c> <![CDATA[ ]]></r>")
    assert root.tag == "{urn:x}r"


@pytest.mark.parametrize(
    "data",
    [
        b"<r><id>MY26-CO-12345<!---->67</id></r>",
        b"<r><id><!-- note -->MY26-CO-1234567</id></r>",
        b"<r><id>MY26-CO-1234567<!-- note --></id></r>",
        b"<r><id>MY26-CO-1234567 <!-- note --> </id></r>",
        b"<r>text<!-- x --><c/></r>",
        b"<r><c/><!-- x -->tail</r>",
        b"<r>\n  <!-- between elements -->\n  <c>1</c>\n</r>",
        b"<r><c>1</c><d><!----></d></r>",
    ],
    ids=[
        "split",
        "leading",
        "trailing",
        "trailing-spaced",
        "after-text",
        "before-tail",
        "between-elements",
        "empty-element",
    ],
)
def test_comment_inside_the_root_is_refused(data: bytes) -> None:
    """Any comment inside the root element is xml-forbidden, naming the element and line."""
    with pytest.raises(ForbiddenXml, match="comment in element") as caught:
        parse(data)
    assert caught.value.code == "xml-forbidden"


def test_cdata_is_merged_into_the_value() -> None:
    """A CDATA section is part of the text: MY26-CO-12345<![CDATA[67]]> reads in full."""
    root = parse(b"<r><id>MY26-CO-12345<![CDATA[67]]></id></r>")
    assert root[0].text == "MY26-CO-1234567"
