"""The tightened signature shape: each rule performed as an attack on a real signed document.

Every document here is signed by the development PKI's SG signer (or a certificate issued by
SG's CA in the test), then edited the way an attacker would. Where the rule must hold before
any cryptography, the signed content is changed too: a refusal other than digest-mismatch
shows that the check ran before signxml.
"""

from __future__ import annotations

import base64
import copy
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from lxml import etree

from gateway.core.envelope import NS_DSIG
from gateway.core.parsing import parse
from gateway.core.signatures import (
    MAX_CERTIFICATE_BYTES,
    MAX_CERTIFICATES,
    SigningKey,
    sign,
    signer_chain,
    verify,
)
from gateway.errors import (
    AlgorithmForbidden,
    DigestMismatch,
    ForbiddenXml,
    KeyTooWeak,
    SignatureInvalid,
    SignatureProblem,
    SignatureWrapping,
)

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

DS = f"{{{NS_DSIG}}}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _signed(bundle: PkiBundle) -> etree._Element:
    return parse(bundle.signed("SG"))


def _tamper_content(root: etree._Element) -> None:
    """Change one signed character, so that signxml, if it ran, would say digest-mismatch."""
    node = next(n for n in root.iter() if n.text and "SG26-CO-0012345" in n.text)
    node.text = (node.text or "").replace("SG26-CO-0012345", "SG26-CO-0099999")


def _node(root: etree._Element, path: str) -> etree._Element:
    found = root.find(f"{DS}Signature/{path}")
    assert found is not None, path
    return found


def _verify(root: etree._Element, bundle: PkiBundle) -> None:
    verify(parse(etree.tostring(root)), bundle.trust(), now=bundle.created)


def _refused(
    root: etree._Element,
    bundle: PkiBundle,
    error: type[SignatureProblem],
    match: str | None = None,
) -> None:
    with pytest.raises(error, match=match):
        _verify(root, bundle)


# --- SignedInfo: one Transforms, nothing foreign ---------------------------------------------


def test_foreign_namespace_transform_is_a_clean_refusal(any_pki: PkiBundle) -> None:
    """A Transform in a foreign namespace (an IndexError before) is signature-reference-invalid."""
    root = _signed(any_pki)
    transforms = _node(root, f"{DS}SignedInfo/{DS}Reference/{DS}Transforms")
    for transform in list(transforms):
        transforms.remove(transform)
    for algorithm in ("http://www.w3.org/2000/09/xmldsig#enveloped-signature", EXC_C14N):
        etree.SubElement(transforms, "{urn:evil}Transform", Algorithm=algorithm)
    _refused(root, any_pki, SignatureWrapping, "ds:Transform")


def test_extra_foreign_element_in_transforms_is_refused(p256_pki: PkiBundle) -> None:
    """A foreign element beside the two pinned transforms is refused."""
    root = _signed(p256_pki)
    transforms = _node(root, f"{DS}SignedInfo/{DS}Reference/{DS}Transforms")
    etree.SubElement(transforms, "{urn:evil}Transform", Algorithm=EXC_C14N)
    _refused(root, p256_pki, SignatureWrapping)


def test_second_transforms_element_is_refused(p256_pki: PkiBundle) -> None:
    """A Reference with two Transforms elements is refused."""
    root = _signed(p256_pki)
    transforms = _node(root, f"{DS}SignedInfo/{DS}Reference/{DS}Transforms")
    transforms.addnext(copy.deepcopy(transforms))
    _refused(root, p256_pki, SignatureInvalid, "Transforms, DigestMethod, DigestValue")


@pytest.mark.parametrize(
    "parent",
    [
        f"{DS}SignedInfo",
        f"{DS}SignedInfo/{DS}Reference",
        f"{DS}SignedInfo/{DS}SignatureMethod",
        f"{DS}SignedInfo/{DS}CanonicalizationMethod",
        f"{DS}SignedInfo/{DS}Reference/{DS}DigestMethod",
    ],
    ids=["signed-info", "reference", "signature-method", "c14n-method", "digest-method"],
)
def test_foreign_element_anywhere_in_signed_info_is_refused(
    p256_pki: PkiBundle, parent: str
) -> None:
    """An element of another namespace anywhere in SignedInfo is refused before signxml."""
    root = _signed(p256_pki)
    etree.SubElement(_node(root, parent), "{urn:evil}Note").text = "hello"
    _tamper_content(root)
    _refused(root, p256_pki, SignatureWrapping)


def test_foreign_attribute_in_signed_info_is_refused(p256_pki: PkiBundle) -> None:
    """An attribute of another namespace on the Reference is refused."""
    root = _signed(p256_pki)
    _node(root, f"{DS}SignedInfo/{DS}Reference").set("{urn:evil}hint", "x")
    _refused(root, p256_pki, SignatureWrapping, "attributes")


def test_hmac_output_length_inside_signature_method_is_refused(p256_pki: PkiBundle) -> None:
    """A ds:HMACOutputLength (truncation attack) inside SignatureMethod is refused."""
    root = _signed(p256_pki)
    etree.SubElement(_node(root, f"{DS}SignedInfo/{DS}SignatureMethod"), f"{DS}HMACOutputLength")
    _refused(root, p256_pki, SignatureWrapping, "SignatureMethod")


# --- KeyInfo: X509Data/X509Certificate only ----------------------------------------------------


@pytest.mark.parametrize(
    ("where", "element"),
    [
        ("KeyInfo", "KeyValue"),
        ("KeyInfo", "KeyName"),
        ("KeyInfo", "RetrievalMethod"),
        ("KeyInfo", "X509Data"),
        ("KeyInfo/X509Data", "X509IssuerSerial"),
        ("KeyInfo/X509Data", "X509SubjectName"),
    ],
)
def test_key_info_holds_only_x509_certificates(
    any_pki: PkiBundle, where: str, element: str
) -> None:
    """KeyValue, KeyName, RetrievalMethod, a second X509Data or other X509Data parts: refused."""
    root = _signed(any_pki)
    parent = _node(root, "/".join(f"{DS}{p}" for p in where.split("/")))
    etree.SubElement(parent, f"{DS}{element}")
    _tamper_content(root)
    _refused(root, any_pki, SignatureInvalid, "X509")


def test_key_value_of_another_key_is_refused(p256_pki: PkiBundle) -> None:
    """A KeyValue naming a different public key than the certificate is refused outright."""
    root = _signed(p256_pki)
    key_info = _node(root, f"{DS}KeyInfo")
    key_value = etree.Element(f"{DS}KeyValue")
    key_info.insert(0, key_value)
    etree.SubElement(etree.SubElement(key_value, f"{DS}RSAKeyValue"), f"{DS}Modulus").text = "AQAB"
    _refused(root, p256_pki, SignatureInvalid, "KeyInfo")


# --- SignatureValue and base64 ---------------------------------------------------------------


def test_child_element_in_signature_value_is_refused(any_pki: PkiBundle) -> None:
    """An element hidden inside SignatureValue is refused (text only there)."""
    root = _signed(any_pki)
    value = _node(root, f"{DS}SignatureValue")
    etree.SubElement(value, "{urn:evil}Payload").text = "forged"
    _refused(root, any_pki, SignatureInvalid, "SignatureValue")


def test_text_inside_the_signature_structure_is_refused(p256_pki: PkiBundle) -> None:
    """Text between the signature's elements (unsigned, stored) is refused."""
    root = _signed(p256_pki)
    _node(root, f"{DS}SignedInfo").tail = "pay to account 12345"
    _refused(root, p256_pki, SignatureInvalid, "text")


def _flip_trailing_bit(text: str) -> str:
    """The same bytes written with a non-zero trailing bit before the padding."""
    compact = "".join(text.split())
    assert compact.endswith("="), "needs padding to carry trailing bits"
    data = compact.rstrip("=")
    last = ALPHABET[ALPHABET.index(data[-1]) ^ 1]
    changed = data[:-1] + last + compact[len(data) :]
    assert base64.b64decode(changed) == base64.b64decode(compact)  # lenient decoders agree
    return changed


@pytest.mark.parametrize(
    "path",
    [
        f"{DS}SignatureValue",
        f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue",
        f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate",
    ],
    ids=["signature-value", "digest-value", "certificate"],
)
@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t[:8] + "!" + t[9:], id="non-alphabet"),
        pytest.param(lambda t: t[:8] + "-" + t[9:], id="url-safe-alphabet"),
        pytest.param(lambda t: "".join(t.split()).rstrip("="), id="missing-padding"),
        pytest.param(lambda t: "".join(t.split()) + "==", id="extra-padding"),
        pytest.param(lambda t: t[:12] + "=" + t[12:], id="padding-inside"),
        pytest.param(_flip_trailing_bit, id="non-zero-trailing-bits"),
    ],
)
def test_non_canonical_base64_is_refused(p256_pki: PkiBundle, path: str, edit: object) -> None:
    """Non-alphabet characters, wrong padding or non-zero trailing bits: signature-invalid."""
    assert callable(edit)
    root = _signed(p256_pki)
    node = _node(root, path)
    if node.tag == f"{DS}X509Certificate":
        # The signer's DER length varies from run to run; a second value of 100 bytes always
        # has padding (and trailing bits). Its text is decoded before any certificate parsing.
        node = _certificate_element(b"\x30" * 100)
        _node(root, f"{DS}KeyInfo/{DS}X509Data").append(node)
    node.text = edit(node.text or "")
    _refused(root, p256_pki, SignatureInvalid, "base64")


def test_base64_folded_with_whitespace_is_accepted(any_pki: PkiBundle) -> None:
    """Canonical base64 folded over lines (as xmlsec1 writes it) still verifies."""
    root = _signed(any_pki)
    for path in (f"{DS}SignatureValue", f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate"):
        node = _node(root, path)
        compact = "".join((node.text or "").split())
        node.text = "\n" + "\n".join(compact[i : i + 76] for i in range(0, len(compact), 76)) + "\n"
    verified = verify(parse(etree.tostring(root)), any_pki.trust(), now=any_pki.created)
    assert verified.signer.country == "SG"


# --- nothing outside the signed content ------------------------------------------------------


def test_comment_before_the_root_is_refused(p256_pki: PkiBundle) -> None:
    """A comment beside the root element is not signed, so the document is refused."""
    data = p256_pki.signed("SG").replace(b"?>", b"?><!-- forwarded by MY -->", 1)
    with pytest.raises(SignatureWrapping, match="outside its root"):
        verify(parse(data), p256_pki.trust(), now=p256_pki.created)


def test_comment_after_the_root_is_refused(p256_pki: PkiBundle) -> None:
    """A comment after the root element is refused."""
    data = p256_pki.signed("SG") + b"<!-- unsigned note -->"
    with pytest.raises(SignatureWrapping, match="outside its root"):
        verify(parse(data), p256_pki.trust(), now=p256_pki.created)


def test_text_after_the_root_is_refused(p256_pki: PkiBundle) -> None:
    """Text set after the root element of a signed tree is refused."""
    root = _signed(p256_pki)
    root.tail = "unsigned text"
    with pytest.raises(SignatureWrapping, match="after its root"):
        verify(root, p256_pki.trust(), now=p256_pki.created)


def test_whitespace_after_the_root_is_accepted(p256_pki: PkiBundle) -> None:
    """Whitespace after the root element is harmless and accepted."""
    data = p256_pki.signed("SG") + b"\n\n  \n"
    assert verify(parse(data), p256_pki.trust(), now=p256_pki.created).signer.country == "SG"


def test_comment_inside_key_info_is_refused(p256_pki: PkiBundle) -> None:
    """A comment inside the (unsigned) KeyInfo is refused by the parser and by verify."""
    root = _signed(p256_pki)
    _node(root, f"{DS}KeyInfo").append(etree.Comment("<script>alert(1)</script>"))
    with pytest.raises(ForbiddenXml):
        _verify(root, p256_pki)
    with pytest.raises(SignatureWrapping, match="comment"):
        verify(etree.fromstring(etree.tostring(root)), p256_pki.trust(), now=p256_pki.created)


# --- KeyInfo limits and the leaf -----------------------------------------------------------


def _certificate_element(der: bytes) -> etree._Element:
    node = etree.Element(f"{DS}X509Certificate")
    node.text = base64.b64encode(der).decode("ascii")
    return node


def _ca_der(bundle: PkiBundle) -> bytes:
    return x509.load_pem_x509_certificate(bundle.pki.countries["SG"].ca.cert_pem).public_bytes(
        Encoding.DER
    )


def test_too_many_certificates_are_refused_before_any_work(rsa_pki: PkiBundle) -> None:
    """KeyInfo with more than the limit of certificates is refused before signxml runs."""
    root = _signed(rsa_pki)
    data = _node(root, f"{DS}KeyInfo/{DS}X509Data")
    for _ in range(MAX_CERTIFICATES):
        data.append(_certificate_element(_ca_der(rsa_pki)))
    _tamper_content(root)
    _refused(root, rsa_pki, SignatureInvalid, f"at most {MAX_CERTIFICATES}")


def test_oversized_certificate_is_refused_before_parsing(p256_pki: PkiBundle) -> None:
    """A certificate over the size limit is refused by its size, not by parsing it."""
    root = _signed(p256_pki)
    _node(root, f"{DS}KeyInfo/{DS}X509Data").append(
        _certificate_element(b"\x30" * (MAX_CERTIFICATE_BYTES + 1))
    )
    _tamper_content(root)
    _refused(root, p256_pki, SignatureInvalid, "larger than")


def test_huge_base64_text_is_refused_by_its_length(p256_pki: PkiBundle) -> None:
    """A megabyte of base64 in a certificate is refused from its length alone."""
    root = _signed(p256_pki)
    node = _node(root, f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    node.text = "QUFB" * 256 * 1024
    _refused(root, p256_pki, SignatureInvalid, "larger than")


def test_unreadable_certificate_is_refused(p256_pki: PkiBundle) -> None:
    """Canonical base64 that is not a certificate: signature-invalid."""
    root = _signed(p256_pki)
    _node(root, f"{DS}KeyInfo/{DS}X509Data").append(_certificate_element(b"not a certificate"))
    _refused(root, p256_pki, SignatureInvalid, "cannot be read")


@pytest.mark.parametrize("where", ["before", "after"])
def test_key_info_order_does_not_matter(any_pki: PkiBundle, where: str) -> None:
    """The root CA listed before or after the signer: the signer is still the leaf."""
    root = _signed(any_pki)
    data = _node(root, f"{DS}KeyInfo/{DS}X509Data")
    ca = _certificate_element(_ca_der(any_pki))
    if where == "before":
        data.insert(0, ca)
    else:
        data.append(ca)
    verified = verify(parse(etree.tostring(root)), any_pki.trust(), now=any_pki.created)
    assert "CN=SG Document Signer (DEV)" in verified.signer.subject
    leaf, intermediates = signer_chain(root)
    assert "Document Signer" in leaf.subject.rfc4514_string()
    assert [c.subject for c in intermediates] == [
        x509.load_der_x509_certificate(_ca_der(any_pki)).subject
    ]


def test_two_unrelated_leaves_are_ambiguous(p256_pki: PkiBundle) -> None:
    """Two certificates that issued nothing (SG's and MY's signers) name no single signer."""
    root = _signed(p256_pki)
    other = x509.load_pem_x509_certificate(p256_pki.issued("MY").cert_pem)
    _node(root, f"{DS}KeyInfo/{DS}X509Data").insert(
        0, _certificate_element(other.public_bytes(Encoding.DER))
    )
    _tamper_content(root)
    _refused(root, p256_pki, SignatureInvalid, "one signer")


def _huge_exponent_ca(bundle: PkiBundle) -> bytes:
    """A fake 'SG Root CA' whose RSA-3072 key has a 3000-bit public exponent (DER)."""
    genuine = x509.load_pem_x509_certificate(bundle.pki.countries["SG"].ca.cert_pem)
    signing = rsa.generate_private_key(65537, 3072)
    modulus = signing.public_key().public_numbers().n
    public = rsa.RSAPublicNumbers((1 << 3000) + 1, modulus).public_key()
    fake = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(bundle.created - timedelta(days=1))
        .not_valid_after(bundle.created + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signing, hashes.SHA256())
    )
    return fake.public_bytes(Encoding.DER)


def test_huge_exponent_ca_in_key_info_is_refused_before_any_work(rsa_pki: PkiBundle) -> None:
    """A fake CA with a huge RSA exponent beside the genuine signer is refused before signxml."""
    root = _signed(rsa_pki)
    _node(root, f"{DS}KeyInfo/{DS}X509Data").append(
        _certificate_element(_huge_exponent_ca(rsa_pki))
    )
    _tamper_content(root)
    _refused(root, rsa_pki, KeyTooWeak, "2\\^32")


# --- the leaf's key ------------------------------------------------------------------------


def _weak_signer(
    bundle: PkiBundle, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> SigningKey:
    """A signer certificate like SG's, issued by SG's CA, for ``private_key``."""
    sg = bundle.pki.countries["SG"]
    ca_key = load_pem_private_key(sg.ca.key_pem, password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(sg.ca.cert_pem)
    genuine = x509.load_pem_x509_certificate(sg.signer.cert_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(ca.subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(bundle.created - timedelta(days=1))
        .not_valid_after(bundle.created + timedelta(days=30))
    )
    for extension in genuine.extensions:
        if isinstance(extension.value, x509.SubjectKeyIdentifier):
            continue
        builder = builder.add_extension(extension.value, critical=extension.critical)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return SigningKey(private_key=private_key, certificate=certificate)


@pytest.mark.parametrize(
    ("make_key", "match"),
    [
        pytest.param(
            lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505  (the attack)
            "1024 bits",
            id="rsa-1024",
        ),
        pytest.param(lambda: rsa.generate_private_key(3, 2048), "exponent", id="rsa-e3"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP224R1()), "secp224r1", id="p-224"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1", id="k-256"),
    ],
)
def test_weak_leaf_key_is_refused_before_signxml(
    rsa_pki: PkiBundle, make_key: object, match: str
) -> None:
    """RSA under 2048 bits, an exponent other than 65537, curves other than P-256/384/521."""
    assert callable(make_key)
    signed = sign(parse(rsa_pki.sample()), _weak_signer(rsa_pki, make_key()))
    _tamper_content(signed)
    _refused(signed, rsa_pki, KeyTooWeak, match)


def test_strong_key_from_the_same_builder_is_accepted(rsa_pki: PkiBundle) -> None:
    """The weak-key helper makes an acceptable signer with a P-256 key (the test can pass)."""
    signed = sign(
        parse(rsa_pki.sample()), _weak_signer(rsa_pki, ec.generate_private_key(ec.SECP256R1()))
    )
    verified = verify(parse(etree.tostring(signed)), rsa_pki.trust(), now=rsa_pki.created)
    assert verified.signer.country == "SG"
    _tamper_content(signed)
    with pytest.raises(DigestMismatch):
        _verify(signed, rsa_pki)


def test_key_type_must_fit_the_signature_method(p256_pki: PkiBundle) -> None:
    """An EC certificate with an RSA signature method is refused before signxml."""
    root = _signed(p256_pki)
    method = _node(root, f"{DS}SignedInfo/{DS}SignatureMethod")
    method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    _tamper_content(root)
    _refused(root, p256_pki, SignatureInvalid, "EC key")


def test_sha1_transform_digest_stays_forbidden(p256_pki: PkiBundle) -> None:
    """The algorithm pinning still answers algorithm-forbidden (regression)."""
    root = _signed(p256_pki)
    _node(root, f"{DS}SignedInfo/{DS}Reference/{DS}DigestMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"
    )
    _refused(root, p256_pki, AlgorithmForbidden)
