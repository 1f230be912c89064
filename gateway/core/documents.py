"""Facts about each document type's body that the rest of the gateway needs.

Only this module (and the schemas and rules) knows where inside a document its business number
lives; the journal's business key is built from it.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime

from lxml import etree

from gateway.core.envelope import (
    NS_ACDD,
    NS_COMMON,
    NS_FORMD,
    NS_ORIGIN_DECLARATION,
    DocumentType,
    document_type_of,
)

_DOCUMENT_ID_PATHS: dict[DocumentType, str] = {
    DocumentType.FORM_D: f"{{{NS_FORMD}}}Declaration/{{{NS_FORMD}}}ID",
    DocumentType.ACDD: f"{{{NS_ACDD}}}Declaration/{{{NS_ACDD}}}ID",
    DocumentType.ORIGIN_DECLARATION: (
        f"{{{NS_ORIGIN_DECLARATION}}}Declaration/{{{NS_ORIGIN_DECLARATION}}}ID"
    ),
}

# Elements that must carry the same number as the document id: an Origin Declaration's number
# is its carrier document's (OCP Rule 12B(5)), so a restamped copy renumbers both.
_LINKED_ID_PATHS: dict[DocumentType, str] = {
    DocumentType.ORIGIN_DECLARATION: (
        f"{{{NS_ORIGIN_DECLARATION}}}Declaration/{{{NS_ORIGIN_DECLARATION}}}CarrierDocument"
        f"/{{{NS_ORIGIN_DECLARATION}}}ID"
    ),
}


def document_id_of(root: etree._Element, document_type: DocumentType) -> str | None:
    """The business document's own number (Form D reference number, ACDD permit number).

    Customs Responses and delivery receipts have none of their own: they are identified by the
    message they answer. Register updates and AEO notifications have none either: the same
    update goes to every partner under its own message id (the register keeps it once, by its
    update id).
    """
    path = _DOCUMENT_ID_PATHS.get(document_type)
    if path is None:
        return None
    node = root.find(path)
    if node is None or not node.text or not node.text.strip():
        return None
    return node.text.strip()


def restamp(
    root: etree._Element,
    *,
    message_id: str,
    document_id: str | None = None,
    created: datetime | None = None,
) -> etree._Element:
    """A copy of ``root`` under a new message id (and document number, creation time).

    For replays and demos: a copy with a fresh message id and document number is a new
    document, not a duplicate. A signed document's signature no longer matches afterwards.
    """
    copy = deepcopy(root)
    header = copy.find(f"{{{NS_COMMON}}}MessageHeader")
    if header is None:
        raise ValueError("the document has no MessageHeader")
    _set(header, "MessageID", message_id)
    if created is not None:
        _set(header, "CreationDateTime", created.isoformat(timespec="seconds"))
    doc_type = document_type_of(copy)
    for path in (_DOCUMENT_ID_PATHS.get(doc_type), _LINKED_ID_PATHS.get(doc_type)):
        if document_id is not None and path is not None:
            node = copy.find(path)
            if node is not None:
                node.text = document_id
    return copy


def _set(header: etree._Element, name: str, value: str) -> None:
    node = header.find(f"{{{NS_COMMON}}}{name}")
    if node is None:
        raise ValueError(f"the header has no {name}")
    node.text = value
