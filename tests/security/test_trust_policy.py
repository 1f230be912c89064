"""Trust policy attacks: each builds a real certificate, signs a real Form D, and verifies it.

Every case runs through ``gateway.core.signatures.verify`` (shape, signature value, then the
trust store's RFC 5280 path validation with the document-signing profile), so the attack takes
the path a document from an NSW takes. Documents are signed with signxml, which signs with any
key it is given, weak or not.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.core.parsing import parse
from gateway.core.signatures import Verified, verify
from gateway.core.trust import DOCUMENT_SIGNING
from gateway.errors import (
    CertificateUntrusted,
    CertificateUsage,
    KeyTooWeak,
    SignatureProblem,
)

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"


@dataclass(frozen=True, slots=True)
class Authority:
    """A certificate with its private key, able to issue."""

    cert: x509.Certificate
    key: Key


def _name(common_name: str, country: str = "SG") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{country} Test Authority"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, sign: bool = False, issue: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=issue,
        crl_sign=issue,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    issuer: Authority,
    key: Key,
    common_name: str,
    *,
    country: str = "SG",
    ca: bool = False,
    path_length: int | None = None,
    purposes: tuple[ObjectIdentifier, ...] | None = (DOCUMENT_SIGNING,),
    critical: x509.ExtensionType | None = None,
) -> Authority:
    """A certificate for ``key`` issued by ``issuer``, valid around now."""
    now = issuer.cert.not_valid_before_utc + timedelta(hours=1)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, country))
        .issuer_name(issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_usage(sign=not ca or purposes is not None, issue=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if purposes is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=False)
    if critical is not None:
        builder = builder.add_extension(critical, critical=True)
    return Authority(cert=builder.sign(issuer.key, hashes.SHA256()), key=key)


def _ca(bundle: PkiBundle, country: str = "SG") -> Authority:
    parts = bundle.pki.countries[country]
    key = serialization.load_pem_private_key(parts.ca.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return Authority(cert=x509.load_pem_x509_certificate(parts.ca.cert_pem), key=key)


def _is_prime(n: int) -> bool:
    if n % 2 == 0:
        return n == 2
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(32):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if _is_prime(candidate):
            return candidate


def _rsa_key(p: int, q: int, e: int) -> rsa.RSAPrivateKey:
    """An RSA key from its primes and any public exponent (cryptography makes only 65537)."""
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e=e, n=p * q),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def rsa_512() -> rsa.RSAPrivateKey:
    """An RSA-512 key (below what cryptography will generate)."""
    return _rsa_key(_prime(256), _prime(256), 65537)


def rsa_huge_exponent(bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent is almost as long as its modulus."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    phi = (numbers.p - 1) * (numbers.q - 1)
    while True:
        e = secrets.randbits(bits - 8) | (1 << (bits - 9)) | 1
        if math.gcd(e, phi) == 1:
            return _rsa_key(numbers.p, numbers.q, e)


def _signed(bundle: PkiBundle, signer: Authority, certs: list[x509.Certificate]) -> bytes:
    """The SG to TH Form D signed by ``signer``, KeyInfo carrying ``certs`` in that order."""
    method = RSA_SHA256 if isinstance(signer.key, rsa.RSAPrivateKey) else ECDSA_SHA256
    xml_signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method,
        digest_algorithm=SHA256,
        c14n_algorithm=EXC_C14N,
    )
    signed = xml_signer.sign(parse(bundle.sample()), key=signer.key, cert=certs)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _verify(bundle: PkiBundle, data: bytes, *, soft_fail: frozenset[str] = frozenset()) -> Verified:
    return verify(parse(data), bundle.trust(soft_fail=soft_fail), now=bundle.created)


def _refused(bundle: PkiBundle, data: bytes, error: type[SignatureProblem]) -> SignatureProblem:
    with pytest.raises(error) as info:
        _verify(bundle, data)
    return info.value


def _leaf(bundle: PkiBundle, key: Key, common_name: str, **kwargs: object) -> bytes:
    signer = _issue(_ca(bundle), key, common_name, **kwargs)  # type: ignore[arg-type]
    return _signed(bundle, signer, [signer.cert])


def test_genuine_signer_of_the_dev_pki_is_accepted(p256_pki: PkiBundle) -> None:
    """The dev PKI's SG document signer, straight under SG's CA, is accepted."""
    verified = _verify(p256_pki, p256_pki.signed("SG"))
    assert verified.signer.country == "SG"


def test_genuine_chain_through_an_intermediate_is_accepted_in_any_order(
    p256_pki: PkiBundle,
) -> None:
    """Root, intermediate CA, signer: accepted with KeyInfo listing the intermediate first."""
    intermediate = _issue(
        _ca(p256_pki), ec.generate_private_key(ec.SECP256R1()), "SG Sub CA", ca=True, purposes=None
    )
    signer = _issue(intermediate, ec.generate_private_key(ec.SECP384R1()), "SG Signer 2")
    for order in ([intermediate.cert, signer.cert], [signer.cert, intermediate.cert]):
        # The test intermediate publishes no CRL: SG's soft-fail policy accepts with a warning.
        verified = _verify(p256_pki, _signed(p256_pki, signer, order), soft_fail=frozenset({"SG"}))
        assert len(verified.signer.chain) == 3
        assert verified.signer.chain[1] == intermediate.cert.subject.rfc4514_string()
        assert len(verified.warnings) == 1


def test_keyinfo_listing_the_root_before_the_signer_is_accepted(p256_pki: PkiBundle) -> None:
    """KeyInfo order does not matter: root first, then the signer, is accepted."""
    sg = p256_pki.pki.countries["SG"]
    signer_key = serialization.load_pem_private_key(sg.signer.key_pem, password=None)
    signer = Authority(cert=x509.load_pem_x509_certificate(sg.signer.cert_pem), key=signer_key)  # type: ignore[arg-type]
    data = _signed(p256_pki, signer, [_ca(p256_pki).cert, signer.cert])
    assert _verify(p256_pki, data).signer.country == "SG"


def test_root_listed_with_the_signer_is_order_free_for_the_trust_store(
    p256_pki: PkiBundle,
) -> None:
    """The trust store accepts the signer whatever the order of the other certificates."""
    sg = p256_pki.pki.countries["SG"]
    leaf = x509.load_pem_x509_certificate(sg.signer.cert_pem)
    root = _ca(p256_pki).cert
    other = x509.load_pem_x509_certificate(p256_pki.pki.countries["MY"].ca.cert_pem)
    store = p256_pki.trust()
    for intermediates in ((root, other), (other, root), ()):
        trusted = store.check_signer(leaf, intermediates, sender="SG", now=p256_pki.created)
        assert trusted.signer.chain[-1] == root.subject.rfc4514_string()


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(
            lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505  (the attack)
            id="rsa1024",
        ),
        pytest.param(rsa_512, id="rsa512"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()), id="p192"),
    ],
)
def test_weak_signer_keys_are_refused(p256_pki: PkiBundle, make_key: object) -> None:
    """RSA-1024, RSA-512 and P-192 signers under SG's real CA: key-too-weak."""
    key = make_key()  # type: ignore[operator]
    problem = _refused(p256_pki, _leaf(p256_pki, key, "SG Weak Signer"), KeyTooWeak)
    assert problem.code == "key-too-weak"


def test_unknown_critical_extension_is_refused(p256_pki: PkiBundle) -> None:
    """A signer carrying a critical extension nobody understands is untrusted."""
    strange = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    data = _leaf(p256_pki, ec.generate_private_key(ec.SECP256R1()), "SG Odd", critical=strange)
    problem = _refused(p256_pki, data, CertificateUntrusted)
    assert "critical" in problem.detail


def test_ca_certificate_as_signer_is_refused(p256_pki: PkiBundle) -> None:
    """A CA:TRUE certificate of SG's CA signing a Form D: certificate-usage."""
    data = _leaf(p256_pki, ec.generate_private_key(ec.SECP256R1()), "SG Sub CA Signing", ca=True)
    problem = _refused(p256_pki, data, CertificateUsage)
    assert "CA" in problem.detail


def test_gateway_tls_certificate_signing_a_form_d_is_refused(p256_pki: PkiBundle) -> None:
    """SG's own TLS certificate (serverAuth, clientAuth) is no document signer."""
    tls = p256_pki.pki.countries["SG"].tls
    key = serialization.load_pem_private_key(tls.key_pem, password=None)
    signer = Authority(cert=x509.load_pem_x509_certificate(tls.cert_pem), key=key)  # type: ignore[arg-type]
    problem = _refused(p256_pki, _signed(p256_pki, signer, [signer.cert]), CertificateUsage)
    assert "document-signing" in problem.detail


def test_server_auth_only_signer_is_refused(p256_pki: PkiBundle) -> None:
    """A signer whose extended key usage is serverAuth only: certificate-usage."""
    data = _leaf(
        p256_pki,
        ec.generate_private_key(ec.SECP256R1()),
        "gateway.sg.asw.test",
        purposes=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )
    _refused(p256_pki, data, CertificateUsage)


def test_path_length_constraint_is_honoured(p256_pki: PkiBundle) -> None:
    """SG's root allows one CA below it; a signer under two is refused."""
    first = _issue(
        _ca(p256_pki), ec.generate_private_key(ec.SECP256R1()), "SG CA 1", ca=True, purposes=None
    )
    second = _issue(
        first, ec.generate_private_key(ec.SECP256R1()), "SG CA 2", ca=True, purposes=None
    )
    signer = _issue(second, ec.generate_private_key(ec.SECP256R1()), "SG Deep Signer")
    data = _signed(p256_pki, signer, [signer.cert, second.cert, first.cert])
    problem = _refused(p256_pki, data, CertificateUntrusted)
    assert "path length" in problem.detail


def test_huge_public_exponent_signer_is_refused_quickly(p256_pki: PkiBundle) -> None:
    """A signer with a 2040-bit RSA exponent: key-too-weak, at the cost of one check."""
    data = _leaf(p256_pki, rsa_huge_exponent(), "SG Slow Signer")
    started = time.process_time()
    problem = _refused(p256_pki, data, KeyTooWeak)
    assert time.process_time() - started < 0.25
    assert "exponent" in problem.detail


def test_fake_cas_with_huge_exponents_cost_no_signature_check(p256_pki: PkiBundle) -> None:
    """Copies of a fake SG root with a huge exponent beside a genuine signer: refused at once."""
    sg = p256_pki.pki.countries["SG"]
    key = serialization.load_pem_private_key(sg.signer.key_pem, password=None)
    signer = Authority(cert=x509.load_pem_x509_certificate(sg.signer.cert_pem), key=key)  # type: ignore[arg-type]
    slow = rsa_huge_exponent(3072)
    root = _ca(p256_pki).cert
    fakes = [
        x509.CertificateBuilder()
        .subject_name(root.subject)
        .issuer_name(root.subject)
        .public_key(slow.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.not_valid_before_utc)
        .not_valid_after(root.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(slow, hashes.SHA256())
        for _ in range(6)
    ]
    data = _signed(p256_pki, signer, [signer.cert, *fakes])
    started = time.process_time()
    problem = _refused(p256_pki, data, KeyTooWeak)
    assert time.process_time() - started < 0.25
    assert "exponent" in problem.detail


def test_mesh_of_fake_cas_sharing_one_key_is_bounded(p256_pki: PkiBundle) -> None:
    """Eight same-named fake CAs that all issue each other: path building gives up quickly."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    fake = Authority(cert=_ca(p256_pki).cert, key=key)
    fake = Authority(cert=_issue(fake, key, "SG Mesh CA", ca=True, purposes=None).cert, key=key)
    cas = [_issue(fake, key, "SG Mesh CA", ca=True, purposes=None).cert for _ in range(8)]
    signer = _issue(fake, ec.generate_private_key(ec.SECP256R1()), "SG Mesh Signer")
    data = _signed(p256_pki, signer, [signer.cert, *cas])
    started = time.process_time()
    problem = _refused(p256_pki, data, CertificateUntrusted)
    assert time.process_time() - started < 0.5
    assert "signature check limit" in problem.detail


def test_signer_of_another_countrys_ca_is_refused_without_trying_other_countries(
    p256_pki: PkiBundle,
) -> None:
    """C=SG issued by MY's CA: untrusted for SG; MY's CA is never consulted (no sender-mismatch)."""
    data = _leaf_of(p256_pki, "MY")
    problem = _refused(p256_pki, data, CertificateUntrusted)
    assert "a CA of SG" in problem.detail
    assert "MY" not in problem.detail.replace("C=SG", "")


def _leaf_of(bundle: PkiBundle, issuing_country: str) -> bytes:
    signer = _issue(
        _ca(bundle, issuing_country),
        ec.generate_private_key(ec.SECP256R1()),
        "SG Foreign-Issued Signer",
    )
    return _signed(bundle, signer, [signer.cert])
