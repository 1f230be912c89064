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


def test_ordinary_document_parses() -> None:
    """A plain namespaced document with comments parses."""
    root = parse(b"<r xmlns='urn:x'><!-- ok --><c>1</c></r>")
    assert root.tag == "{urn:x}r"
