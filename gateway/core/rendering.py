"""A document as JSON, for the API and the console: its schema's shape, in plain keys.

xmlschema decodes the document with its own schema (the one the gateway validates it with),
so the JSON follows the schema, not the accident of one document: an element the schema lets
repeat is always a list (a Form D with one goods item still has a list of one), booleans are
``true``/``false``, and amounts and quantities stay strings so that ``486.50`` is never
rounded. Keys are element names without namespace prefixes; an attribute is ``@name`` and the
text of an element that also has attributes is ``$``::

    {"EFormD": {"MessageHeader": {"MessageID": "6f1c...", ...},
                "Declaration": {..., "GoodsMeasure": {"GrossMassMeasure":
                                                       {"@unitCode": "KGM", "$": "486.5"}}}}}

The XML signature (``ds:Signature``) is left out: it is for machines, and the message's own
record says whether it was verified. Pure: no I/O; the caller supplies the parsed document.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import xmlschema
from lxml import etree

XMLDSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"


def render_document(root: etree._Element, schema: xmlschema.XMLSchemaBase) -> dict[str, Any]:
    """The document under ``root`` as a JSON-ready dict, shaped by ``schema``.

    Decoding never refuses: a stored document that a later schema no longer accepts (a code
    taken off its list) still renders, value for value.
    """
    if any(_is_signature(child) for child in root):
        root = copy.deepcopy(root)  # the caller's tree stays as it is
        for child in [child for child in root if _is_signature(child)]:
            root.remove(child)
    decoded = schema.decode(
        root,
        validation="skip",
        strip_namespaces=True,
        decimal_type=str,
        datetime_types=False,
        use_location_hints=False,  # an xsi:schemaLocation in the document is never followed
    )
    content: Any = decoded[0] if isinstance(decoded, tuple) else decoded
    return {etree.QName(root).localname: content}


def _is_signature(elem: etree._Element) -> bool:
    return str(elem.tag).startswith(f"{{{XMLDSIG_NS}}}")  # a comment's tag is not a str
