"""signxml as another member state's signer: what plain signxml signs in the profile is accepted.

signxml is the gateway's own signature engine now (gateway.core.signatures), so it no longer
judges the gateway; xmlsec1 does (test_xmlsec1_openssl). These tests pin that a document signed
with signxml's ordinary API in the profile is accepted, and that signxml's other KeyInfo
shapes are refused by the gateway's shape check.
"""

from __future__ import annotations

import pytest
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.core.parsing import parse
from gateway.core.signatures import EXC_C14N, verify
from gateway.errors import DigestMismatch, SignatureInvalid
from tests.pki_fixtures import PkiBundle

DIGESTS = ["sha256", "sha384", "sha512"]


def _signxml_signed(bundle: PkiBundle, digest: str, *, key_value: bool = False) -> bytes:
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
        always_add_key_value=key_value,
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("digest", DIGESTS)
def test_gateway_accepts_what_signxml_signs(any_pki: PkiBundle, digest: str) -> None:
    """A signature made with plain signxml in the profile verifies in the gateway, for SG."""
    data = _signxml_signed(any_pki, digest)
    verified = verify(parse(data), any_pki.trust(), now=any_pki.created)
    assert verified.envelope.sender.country == "SG"


def test_signxml_signature_changed_afterwards_is_refused(any_pki: PkiBundle) -> None:
    """Content changed after a plain signxml signature: digest-mismatch."""
    data = _signxml_signed(any_pki, "sha256").replace(b"SG26-CO-0012345", b"SG26-CO-0099999")
    with pytest.raises(DigestMismatch):
        verify(parse(data), any_pki.trust(), now=any_pki.created)


def test_signxml_key_value_beside_the_certificate_is_refused(p256_pki: PkiBundle) -> None:
    """signxml's KeyValue (always_add_key_value) is outside the profile: signature-invalid."""
    data = _signxml_signed(p256_pki, "sha256", key_value=True)
    assert b"KeyValue" in data
    with pytest.raises(SignatureInvalid, match="KeyInfo"):
        verify(parse(data), p256_pki.trust(), now=p256_pki.created)
