"""Signature wrapping: every way of showing the verifier one thing and the reader another."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from gateway.core.envelope import NS_COMMON, NS_DSIG, NS_FORMD
from gateway.core.parsing import parse
from gateway.core.signatures import sign, verify
from gateway.errors import DigestMismatch, ForbiddenXml, SignatureInvalid, SignatureWrapping

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

DS = f"{{{NS_DSIG}}}"
FD = f"{{{NS_FORMD}}}"
CM = f"{{{NS_COMMON}}}"


def _refused(root: etree._Element, bundle: PkiBundle) -> None:
    with pytest.raises(SignatureWrapping):
        verify(root, bundle.trust(), now=bundle.created)


def test_signed_document_moved_under_another_parent(p256_pki: PkiBundle) -> None:
    """An attacker's document carrying the signed one inside an element is refused."""
    signed = parse(p256_pki.signed("SG"))
    evil = parse(p256_pki.sample())
    wrapper = etree.SubElement(evil, f"{FD}Remarks")
    wrapper.append(signed)
    _refused(parse(etree.tostring(evil)), p256_pki)


def test_second_unsigned_copy_beside_the_signed_document(p256_pki: PkiBundle) -> None:
    """A forged unsigned copy and the signed document side by side under one root: refused."""
    signed = parse(p256_pki.signed("SG"))
    forged = parse(p256_pki.sample())
    holder = etree.Element(f"{FD}EFormD", nsmap={"fd": NS_FORMD})
    holder.extend([forged, signed])
    _refused(parse(etree.tostring(holder)), p256_pki)


def test_unsigned_copy_added_inside_the_signed_document(p256_pki: PkiBundle) -> None:
    """An extra copy of the declaration inside the signed root breaks the whole-document digest."""
    signed = parse(p256_pki.signed("SG"))
    declaration = signed.find(f"{FD}Declaration")
    assert declaration is not None
    signed.insert(1, copy.deepcopy(declaration))
    with pytest.raises(DigestMismatch):
        verify(signed, p256_pki.trust(), now=p256_pki.created)


def test_copy_of_the_signed_document_inside_a_signature_object(p256_pki: PkiBundle) -> None:
    """A ds:Object smuggling content inside the signature is refused."""
    signed = parse(p256_pki.signed("SG"))
    signature = signed.find(f"{DS}Signature")
    assert signature is not None
    holder = etree.SubElement(signature, f"{DS}Object")
    holder.append(parse(p256_pki.sample()))
    _refused(signed, p256_pki)


def test_reference_to_a_different_element(p256_pki: PkiBundle) -> None:
    """A signature over one element (Reference URI="#decl") instead of the document."""
    root = parse(p256_pki.sample())
    declaration = root.find(f"{FD}Declaration")
    assert declaration is not None
    declaration.set("Id", "decl")
    key = p256_pki.key("SG")
    from signxml.algorithms import SignatureConstructionMethod
    from signxml.signer import XMLSigner

    signed = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.signature_method,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    ).sign(root, key=key.private_key, cert=[key.certificate], reference_uri="#decl")
    _refused(signed, p256_pki)


def test_duplicated_id_with_a_forged_twin(p256_pki: PkiBundle) -> None:
    """A by-ID reference with a second element carrying the same Id is refused."""
    root = parse(p256_pki.sample())
    declaration = root.find(f"{FD}Declaration")
    assert declaration is not None
    declaration.set("Id", "decl")
    key = p256_pki.key("SG")
    from signxml.algorithms import SignatureConstructionMethod
    from signxml.signer import XMLSigner

    signed = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.signature_method,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    ).sign(root, key=key.private_key, cert=[key.certificate], reference_uri="#decl")
    twin = copy.deepcopy(signed.find(f"{FD}Declaration"))
    assert twin is not None
    signed.insert(0, twin)
    _refused(signed, p256_pki)


def test_comment_injected_into_signed_text(p256_pki: PkiBundle) -> None:
    """A comment splitting the sender's country code (S<!---->G) is refused by both checks."""
    data = p256_pki.signed("SG").replace(
        b"<cm:CountryCode>SG</cm:CountryCode>", b"<cm:CountryCode>S<!-- -->G</cm:CountryCode>", 1
    )
    with pytest.raises(ForbiddenXml):
        parse(data)
    _refused(etree.fromstring(data), p256_pki)  # a tree read by a laxer parser: verify refuses


def test_comment_between_elements_is_refused(p256_pki: PkiBundle) -> None:
    """A comment between elements is not signed: parse and verify each refuse it."""
    data = p256_pki.signed("SG").replace(b"<cm:MessageID>", b"<!-- note --><cm:MessageID>", 1)
    with pytest.raises(ForbiddenXml):
        parse(data)
    _refused(etree.fromstring(data), p256_pki)


def test_two_signatures_are_refused(p256_pki: PkiBundle) -> None:
    """A document with a second ds:Signature is refused."""
    signed = parse(p256_pki.signed("SG"))
    signature = signed.find(f"{DS}Signature")
    assert signature is not None
    header = signed.find(f"{CM}MessageHeader")
    assert header is not None
    header.append(copy.deepcopy(signature))
    _refused(signed, p256_pki)


@pytest.mark.parametrize(
    "path",
    [f"{DS}SignatureValue", f"{DS}KeyInfo", f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue"],
    ids=["signature-value", "key-info", "digest-value"],
)
def test_a_doubled_signature_part_is_refused(p256_pki: PkiBundle, path: str) -> None:
    """A second SignatureValue, KeyInfo or DigestValue is malformed, whichever comes first."""
    signed = parse(p256_pki.signed("SG"))
    part = signed.find(f"{DS}Signature/{path}")
    assert part is not None
    parent = part.getparent()
    assert parent is not None
    parent.insert(parent.index(part), copy.deepcopy(part))
    with pytest.raises(SignatureInvalid):
        verify(signed, p256_pki.trust(), now=p256_pki.created)


def test_signature_not_last_is_refused(p256_pki: PkiBundle) -> None:
    """Content after the ds:Signature (appended unsigned) is refused."""
    signed = parse(p256_pki.signed("SG"))
    etree.SubElement(signed, f"{FD}Declaration")
    _refused(signed, p256_pki)


def test_verified_tree_is_a_copy_of_signed_content(p256_pki: PkiBundle) -> None:
    """Changing the input tree after verify() does not change the returned tree."""
    root = parse(p256_pki.signed("SG"))
    verified = verify(root, p256_pki.trust(), now=p256_pki.created)
    header_id = root.find(f"{CM}MessageHeader/{CM}MessageID")
    assert header_id is not None
    header_id.text = "changed"
    assert verified.root.findtext(f"{CM}MessageHeader/{CM}MessageID") != "changed"


def test_sign_refuses_nothing_it_later_cannot_verify(p256_pki: PkiBundle) -> None:
    """A document signed by sign() passes every wrapping check."""
    signed = sign(parse(p256_pki.sample()), p256_pki.key("SG"))
    assert verify(signed, p256_pki.trust(), now=p256_pki.created).signer.country == "SG"
