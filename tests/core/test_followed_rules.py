"""The rules that read the message a conversation step follows: a rejection's TypeCode, an
origin determination's procedure, e-Form D and items against its request."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from gateway.core.envelope import DocumentType
from gateway.core.parsing import parse
from gateway.core.rule_catalogue import CATALOGUE, FOLLOWED_RULES
from gateway.core.rules.conversations import followed_rules

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NS = {"dt": "urn:asw-gw:datamodel:ODT-DMS:1", "rj": "urn:asw-gw:datamodel:REJ-DMS:1"}


def _sample(name: str) -> etree._Element:
    return parse((SAMPLES / name).read_bytes())


def _codes(
    root: etree._Element, doc: DocumentType, followed_type: str, followed: str | None
) -> list[str]:
    request = _sample(followed) if followed else None
    return sorted(f.code for f in followed_rules(root, doc, followed_type, request))


def _set(root: etree._Element, path: str, value: str) -> etree._Element:
    (found,) = root.iterfind(path.replace("//", ".//"), namespaces=NS)
    found.text = value
    return root


CHECK_REQUEST = "verification/valid/th-sg-retroactive-check-request.xml"
VISIT_REQUEST = "verification/valid/th-sg-visit-request.xml"
CHECK_DETERMINATION = "determination/valid/th-sg-retroactive-check-determination.xml"
VISIT_DETERMINATION = "determination/valid/th-sg-visit-determination.xml"
ODT = DocumentType.ORIGIN_DETERMINATION


def test_the_followed_rules_are_catalogued_apart() -> None:
    """The journal-reading rules have stable codes outside CATALOGUE (no sample can show them)."""
    assert set(FOLLOWED_RULES).isdisjoint(CATALOGUE)
    assert "rejection-type-mismatch" in FOLLOWED_RULES


def test_a_rejection_naming_another_type_than_the_rejected_message() -> None:
    """TypeCode OD on a rejection that refers to an e-Form D is rejection-type-mismatch."""
    rejection = _sample("rejection/valid/th-sg-formd-items-rejected.xml")
    assert _codes(rejection, DocumentType.REJECTION_NOTICE, "EFD", None) == []
    _set(rejection, "//rj:Declaration/rj:TypeCode", "OD")
    found = list(followed_rules(rejection, DocumentType.REJECTION_NOTICE, "EFD", None))
    assert [f.code for f in found] == ["rejection-type-mismatch"]
    assert found[0].severity == "error" and "EFD" in found[0].message
    assert found[0].path is not None and found[0].path.endswith("TypeCode")


def test_a_rejection_of_an_origin_declaration_typed_as_form_d() -> None:
    """TypeCode EFD on a rejection that refers to an Origin Declaration is a mismatch too."""
    rejection = _sample("rejection/valid/my-sg-origin-declaration-rejected.xml")
    assert _codes(rejection, DocumentType.REJECTION_NOTICE, "OD", None) == []
    assert _codes(rejection, DocumentType.REJECTION_NOTICE, "EFD", None) == [
        "rejection-type-mismatch"
    ]


def test_the_valid_determinations_match_their_requests() -> None:
    """Each valid determination sample agrees with the request it refers to."""
    check = _sample(CHECK_DETERMINATION)
    visit = _sample(VISIT_DETERMINATION)
    assert _codes(check, ODT, "RCQ", CHECK_REQUEST) == []
    assert _codes(visit, ODT, "VVQ", VISIT_REQUEST) == []


def test_a_determination_of_the_wrong_procedure() -> None:
    """A RETROACTIVE_CHECK determination that refers to a visit request is refused."""
    check = _sample(CHECK_DETERMINATION)
    assert _codes(check, ODT, "VVQ", None) == ["determination-procedure-mismatch"]


def test_a_determination_about_another_form_d() -> None:
    """The determination must be about the e-Form D the request was about."""
    check = _set(_sample(CHECK_DETERMINATION), "//dt:Declaration/dt:ID", "SG26-CO-9999999")
    assert _codes(check, ODT, "RCQ", CHECK_REQUEST) == ["determination-declaration-mismatch"]


def test_items_must_be_items_of_the_request() -> None:
    """An item not asked about is an error; an item asked about but not decided is a warning."""
    check = _set(_sample(CHECK_DETERMINATION), "//dt:SequenceNumeric", "2")
    found = list(followed_rules(check, ODT, "RCQ", _sample(CHECK_REQUEST)))
    assert [(f.code, f.severity) for f in found] == [
        ("determination-item-not-requested", "error"),
        ("determination-item-undecided", "warning"),
    ]
    assert "item 2" in found[0].message and "item 1" in found[1].message


def test_without_the_request_document_only_the_procedure_is_checked() -> None:
    """When the request's bytes are not held (purged), items cannot be checked and are not."""
    check = _set(_sample(CHECK_DETERMINATION), "//dt:SequenceNumeric", "7")
    assert _codes(check, ODT, "RCQ", None) == []
