"""Enveloped XML signatures: the shape we make, and every refusal of verify()."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from lxml import etree

from gateway.core import signatures
from gateway.core.envelope import NS_DSIG
from gateway.core.parsing import parse
from gateway.core.signatures import SigningKey, load_signing_key, sign, verify
from gateway.errors import (
    AlgorithmForbidden,
    CertificateExpired,
    DigestMismatch,
    SettingsError,
    SignatureInvalid,
    SignatureWrapping,
    Unsigned,
)

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

DS = f"{{{NS_DSIG}}}"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "formd" / "valid" / "sg-th-basic.xml"


def _sample() -> bytes:
    return SAMPLE.read_bytes()


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def test_signature_is_last_child_with_the_pinned_shape(any_pki: PkiBundle) -> None:
    """sign() appends one ds:Signature with URI="", enveloped + exc-c14n and the certificate."""
    signed = sign(parse(_sample()), any_pki.key("SG"))
    signature = signed[-1]
    assert signature.tag == f"{DS}Signature"
    (reference,) = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    assert reference.get("URI") == ""
    transforms = [t.get("Algorithm") for t in reference.iter(f"{DS}Transform")]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    assert signature.find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate") is not None


def test_round_trip_returns_the_signed_content_and_signer(any_pki: PkiBundle) -> None:
    """A document signed by SG's signer verifies, naming the signer, its country and chain."""
    verified = verify(parse(any_pki.signed("SG")), any_pki.trust(), now=any_pki.created)
    assert verified.signer.country == "SG"
    assert "CN=SG Document Signer (DEV)" in verified.signer.subject
    assert len(verified.signer.fingerprint) == 64
    assert verified.signer.chain[-1].startswith("CN=SG Root CA (DEV)")
    assert verified.warnings == ()
    assert verified.root.find(f".//{DS}Signature") is None
    original = etree.tostring(parse(_sample()), method="c14n", exclusive=True)
    assert etree.tostring(verified.root, method="c14n", exclusive=True) == original


def test_sign_does_not_change_the_input_tree(p256_pki: PkiBundle) -> None:
    """sign() returns a new tree and leaves the caller's tree unsigned."""
    root = parse(_sample())
    sign(root, p256_pki.key("SG"))
    assert root.find(f"{DS}Signature") is None


@pytest.mark.parametrize("digest", ["sha384", "sha512"])
def test_stronger_digests_are_accepted(p256_pki: PkiBundle, digest: str) -> None:
    """SHA-384 and SHA-512 signatures verify."""
    signed = sign(parse(_sample()), p256_pki.key("SG", digest=digest))
    verified = verify(signed, p256_pki.trust(), now=p256_pki.created)
    assert verified.signer.country == "SG"


def test_unsigned_document_is_refused(p256_pki: PkiBundle) -> None:
    """A document without ds:Signature is refused as unsigned."""
    with pytest.raises(Unsigned):
        verify(parse(_sample()), p256_pki.trust(), now=p256_pki.created)


def test_changed_content_is_a_digest_mismatch(any_pki: PkiBundle) -> None:
    """Changing one signed character gives digest-mismatch."""
    tampered = _swap(any_pki.signed("SG"), b"SG26-CO-0012345", b"SG26-CO-0012346")
    with pytest.raises(DigestMismatch):
        verify(parse(tampered), any_pki.trust(), now=any_pki.created)


def test_changed_signed_info_is_signature_invalid(p256_pki: PkiBundle) -> None:
    """Changing the DigestValue (inside SignedInfo) breaks the signature value."""
    root = parse(p256_pki.signed("SG"))
    digest_value = root.find(f".//{DS}DigestValue")
    assert digest_value is not None and digest_value.text
    digest_value.text = ("B" if digest_value.text[0] == "A" else "A") + digest_value.text[1:]
    with pytest.raises(SignatureInvalid):
        verify(root, p256_pki.trust(), now=p256_pki.created)


@pytest.mark.parametrize(
    ("element", "algorithm"),
    [
        ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"),
        ("SignatureMethod", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
        ("SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"),
        ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"),
        ("DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1"),
        ("DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"),
        ("CanonicalizationMethod", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"),
    ],
    ids=["hmac", "hmac-sha1", "rsa-sha1", "ecdsa-sha1", "rsa-md5", "sha1", "md5", "c14n"],
)
def test_algorithms_outside_the_pinned_set_are_refused(
    any_pki: PkiBundle, element: str, algorithm: str
) -> None:
    """SHA-1, MD5, HMAC and inclusive C14N give algorithm-forbidden."""
    root = parse(any_pki.signed("SG"))
    node = root.find(f".//{DS}{element}")
    assert node is not None
    node.set("Algorithm", algorithm)
    with pytest.raises(AlgorithmForbidden):
        verify(root, any_pki.trust(), now=any_pki.created)


def test_xpath_transform_is_refused(p256_pki: PkiBundle) -> None:
    """A transform outside enveloped + exc-c14n (here XPath) is algorithm-forbidden."""
    signed = _swap(
        p256_pki.signed("SG"),
        b'Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"',
        b'Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"',
    )
    with pytest.raises(AlgorithmForbidden):
        verify(parse(signed), p256_pki.trust(), now=p256_pki.created)


def test_validity_is_checked_at_the_given_now(p256_pki: PkiBundle) -> None:
    """The same signature is refused as expired when checked three years later."""
    signed = parse(p256_pki.signed("SG"))
    with pytest.raises(CertificateExpired):
        verify(signed, p256_pki.trust(), now=p256_pki.created + timedelta(days=3 * 365))


def test_signing_a_signed_document_is_refused(p256_pki: PkiBundle) -> None:
    """sign() refuses a tree that already carries a ds:Signature."""
    with pytest.raises(SignatureWrapping):
        sign(parse(p256_pki.signed("SG")), p256_pki.key("SG"))


def test_key_and_certificate_must_match(p256_pki: PkiBundle) -> None:
    """load_signing_key() refuses another certificate's key, without echoing key material."""
    sg, my = p256_pki.issued("SG"), p256_pki.issued("MY")
    with pytest.raises(SettingsError) as raised:
        load_signing_key(my.key_pem, sg.cert_pem)
    assert "PRIVATE KEY" not in raised.value.detail


def test_unreadable_key_is_a_settings_error(p256_pki: PkiBundle) -> None:
    """A key file that is not PEM gives SettingsError, not a cryptography exception."""
    with pytest.raises(SettingsError):
        load_signing_key(b"not a key", p256_pki.issued("SG").cert_pem)


def test_signing_key_repr_hides_the_private_key(p256_pki: PkiBundle) -> None:
    """repr(SigningKey) never shows the private key object."""
    assert "private_key" not in repr(p256_pki.key("SG"))


def _fresh_signer(bundle: PkiBundle) -> SigningKey:
    """A new P-256 signer issued by SG's CA: its certificate was never seen by any cache."""
    sg = bundle.pki.countries["SG"]
    ca_key = load_pem_private_key(sg.ca.key_pem, password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    genuine = x509.load_pem_x509_certificate(sg.signer.cert_pem)
    private_key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.issuer)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
    )
    for extension in genuine.extensions:
        if not isinstance(extension.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(extension.value, critical=extension.critical)
    return SigningKey(private_key=private_key, certificate=builder.sign(ca_key, hashes.SHA256()))


def test_certificate_cache_is_filled_only_after_the_signature_verified(
    rsa_pki: PkiBundle,
) -> None:
    """A refused document leaves its certificate out of the cache; an accepted one adds it."""
    key = _fresh_signer(rsa_pki)
    der = key.certificate.public_bytes(Encoding.DER)
    signed = etree.tostring(sign(parse(_sample()), key))
    tampered = parse(_swap(signed, b"SG26-CO-0012345", b"SG26-CO-0012346"))
    with pytest.raises(DigestMismatch):
        verify(tampered, rsa_pki.trust(), now=rsa_pki.created)
    assert signatures._CACHE.get(der) is None
    verify(parse(signed), rsa_pki.trust(), now=rsa_pki.created)
    assert signatures._CACHE.get(der) == key.certificate


def test_certificate_cache_is_keyed_by_der_not_by_text(rsa_pki: PkiBundle) -> None:
    """The same certificate folded differently is one cache entry, not a new one."""
    key = _fresh_signer(rsa_pki)
    root = sign(parse(_sample()), key)
    verify(parse(etree.tostring(root)), rsa_pki.trust(), now=rsa_pki.created)
    # The certificate is cached, so the count below could grow if the key were the text.
    assert signatures._CACHE.get(key.certificate.public_bytes(Encoding.DER)) == key.certificate
    entries = len(signatures._CACHE)
    for width in (16, 40, 72):
        node = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
        assert node is not None
        compact = "".join((node.text or "").split())
        node.text = "\n".join(compact[i : i + width] for i in range(0, len(compact), width))
        verify(parse(etree.tostring(root)), rsa_pki.trust(), now=rsa_pki.created)
    assert len(signatures._CACHE) == entries


def test_certificate_cache_is_bounded_by_bytes(rsa_pki: PkiBundle) -> None:
    """The cache keeps at most its byte budget of DER, dropping the least recently used."""
    cache = signatures._CertificateCache(max_bytes=3 * 1024)
    keys = [_fresh_signer(rsa_pki) for _ in range(6)]
    ders = [k.certificate.public_bytes(Encoding.DER) for k in keys]
    for der, key in zip(ders, keys, strict=True):
        cache.add([signatures._Certificate(der, key.certificate)])
        assert cache.total_bytes <= 3 * 1024
    assert cache.get(ders[-1]) is not None
    assert cache.get(ders[0]) is None
    assert cache.total_bytes == sum(len(d) for d in ders if cache.get(d) is not None)


def test_sign_leaves_comments_out_of_the_signed_tree(p256_pki: PkiBundle) -> None:
    """Comments are not covered by the signature, so sign() drops them and the result verifies."""
    data = _swap(_sample(), b"<cm:MessageID>", b"<!-- internal note --><cm:MessageID>")
    root = etree.fromstring(data)  # the hardened parse() refuses comments; a caller's tree may not
    signed = sign(root, p256_pki.key("SG"))
    assert not list(signed.iter(etree.Comment))
    assert list(root.iter(etree.Comment))  # the caller's tree is unchanged
    verified = verify(parse(etree.tostring(signed)), p256_pki.trust(), now=p256_pki.created)
    assert verified.signer.country == "SG"
