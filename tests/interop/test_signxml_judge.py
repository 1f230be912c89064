"""signxml as an independent judge of the gateway's own XML-DSig (gateway.core.xmldsig).

The gateway signs and verifies its one profile itself; signxml, a general XML-DSig library,
must agree both ways: it accepts what the gateway signs, the gateway accepts what signxml signs
in the profile, and both refuse the same
tampering.
"""

from __future__ import annotations

import pytest
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.exceptions import InvalidDigest, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

from gateway.core.parsing import parse
from gateway.core.signatures import EXC_C14N, sign, verify
from gateway.errors import DigestMismatch, SignatureInvalid
from tests.pki_fixtures import PkiBundle

DIGESTS = ["sha256", "sha384", "sha512"]


def _signxml_signed(bundle: PkiBundle, digest: str) -> bytes:
    key = bundle.key("SG", digest=digest)
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.signature_method,
        digest_algorithm=key.digest_algorithm,
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(
        parse(bundle.sample()),
        key=key.private_key,
        cert=[key.certificate],
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _gateway_signed(bundle: PkiBundle, digest: str) -> bytes:
    signed = sign(parse(bundle.sample()), bundle.key("SG", digest=digest))
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("digest", DIGESTS)
def test_signxml_accepts_what_the_gateway_signs(any_pki: PkiBundle, digest: str) -> None:
    """A gateway signature verifies in signxml, which hands back the same signed content."""
    data = _gateway_signed(any_pki, digest)
    result = XMLVerifier().verify(data, x509_cert=any_pki.key("SG").certificate)
    assert not isinstance(result, list) and result.signed_xml is not None
    ours = verify(parse(data), any_pki.trust(), now=any_pki.created)
    assert etree.tostring(result.signed_xml, method="c14n") == etree.tostring(
        ours.root, method="c14n"
    )


@pytest.mark.parametrize("digest", DIGESTS)
def test_gateway_accepts_what_signxml_signs(any_pki: PkiBundle, digest: str) -> None:
    """A signxml signature in the profile verifies in the gateway.

    (Prefix lists are tried with xmlsec1 in test_xmlsec1_openssl: signxml 4 writes the list on
    SignedInfo only and then refuses its own output.)
    """
    data = _signxml_signed(any_pki, digest)
    verified = verify(parse(data), any_pki.trust(), now=any_pki.created)
    assert verified.envelope.sender.country == "SG"


def test_both_refuse_changed_content(any_pki: PkiBundle) -> None:
    """Content changed after signing: digest mismatch for the gateway and for signxml."""
    data = _gateway_signed(any_pki, "sha256").replace(b"SG26-CO-0012345", b"SG26-CO-0099999")
    with pytest.raises(InvalidDigest):
        XMLVerifier().verify(data, x509_cert=any_pki.key("SG").certificate)
    with pytest.raises(DigestMismatch):
        verify(parse(data), any_pki.trust(), now=any_pki.created)


def test_both_refuse_a_changed_signature_value(any_pki: PkiBundle) -> None:
    """A flipped byte in SignatureValue: refused by signxml and by the gateway."""
    root = parse(_gateway_signed(any_pki, "sha256"))
    value = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    assert value is not None and value.text
    value.text = ("B" if value.text[5] == "A" else "A").join((value.text[:5], value.text[6:]))
    data = etree.tostring(root)
    with pytest.raises(InvalidSignature):
        XMLVerifier().verify(data, x509_cert=any_pki.key("SG").certificate)
    with pytest.raises(SignatureInvalid):
        verify(parse(data), any_pki.trust(), now=any_pki.created)


def test_text_after_the_signature_stays_signed(rsa_pki: PkiBundle) -> None:
    """Whitespace after the signature belongs to the signed content (enveloped transform)."""
    root = parse(_gateway_signed(rsa_pki, "sha256"))
    root[-1].tail = "\n"  # set after signing: the digest covered no text there
    data = etree.tostring(root)
    with pytest.raises(InvalidDigest):
        XMLVerifier().verify(data, x509_cert=rsa_pki.key("SG").certificate)
    with pytest.raises(DigestMismatch):
        verify(parse(data), rsa_pki.trust(), now=rsa_pki.created)
