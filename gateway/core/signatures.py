"""Enveloped XML signatures over whole exchange documents: sign, and verify against trust.

The one shape the gateway makes and accepts: a single ``ds:Signature`` as the last child of the
document's root, with one ``Reference URI=""`` whose transforms are exactly enveloped-signature
then exclusive C14N, RSA or ECDSA with SHA-256/384/512, and the signing certificate (plus any
intermediates) in ``KeyInfo/X509Data``. Anything else is refused before any cryptography runs.

``gateway.core.xmldsig`` does the XML-DSig work for exactly this profile (signxml and xmlsec1
judge it in the tests); its exceptions become the gateway's error classes in
``_check_signature`` and ``sign`` only. After verification only the tree rebuilt from the
canonical bytes the digest covered is returned: the caller never reads the unverified input.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from lxml import etree

from gateway.core.envelope import NS_DSIG, Envelope, read_envelope
from gateway.core.parsing import hardened_parser
from gateway.core.trust import Signer, TrustStore
from gateway.core.xmldsig import (
    DIGEST_BY_URI,
    DIGESTS,
    ENVELOPED_URI,
    EXC_C14N_URI,
    SIGNATURE_BY_URI,
    DigestDiffers,
    ValueRefused,
    decode_base64_text,
    sign_enveloped,
    verify_enveloped,
)
from gateway.errors import (
    AlgorithmForbidden,
    DigestMismatch,
    SettingsError,
    SignatureInvalid,
    SignatureWrapping,
    Unsigned,
)

__all__ = [
    "Signer",
    "SigningKey",
    "Verified",
    "load_signing_key",
    "sign",
    "verify",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

EXC_C14N = EXC_C14N_URI
_PINNED_SIGNATURE_URIS = frozenset(SIGNATURE_BY_URI)
_PINNED_DIGEST_URIS = frozenset(DIGEST_BY_URI)
_TRANSFORMS = (ENVELOPED_URI, EXC_C14N)

_SIGNATURE = f"{{{NS_DSIG}}}Signature"
_SIGNATURE_CHILDREN = (
    f"{{{NS_DSIG}}}SignedInfo",
    f"{{{NS_DSIG}}}SignatureValue",
    f"{{{NS_DSIG}}}KeyInfo",
)
_DS = f"{{{NS_DSIG}}}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A private key with its certificate and the intermediates to send along."""

    private_key: PrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    digest: str = "sha256"  # sha256 | sha384 | sha512

    @property
    def signature_method(self) -> str:
        """The URI of the XML-DSig SignatureMethod this key signs with."""
        _, rsa_method, ec_method = DIGESTS[self.digest]
        return rsa_method if isinstance(self.private_key, rsa.RSAPrivateKey) else ec_method

    @property
    def digest_algorithm(self) -> str:
        """The URI of the XML-DSig DigestMethod of the reference."""
        return DIGESTS[self.digest][0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A document whose signature verified and whose signer is trusted for its sender."""

    root: etree._Element  # rebuilt from the signed bytes; the ds:Signature is not in it
    envelope: Envelope  # read from ``root``, the signed content
    signer: Signer
    warnings: tuple[str, ...] = ()


def load_signing_key(
    key_pem: bytes, cert_pem: bytes, chain_pems: Sequence[bytes] = (), *, digest: str = "sha256"
) -> SigningKey:
    """Load a signing key and its certificate (PEM); ``cert_pem`` may carry the chain too.

    Raises ``SettingsError`` when the key or certificates cannot be read, or do not match.
    Error messages never contain key material.
    """
    if digest not in DIGESTS:
        raise SettingsError([f"signing digest must be one of {sorted(DIGESTS)}, not {digest!r}"])
    try:
        private_key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(["the signing key is not an unencrypted PEM private key"]) from exc
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SettingsError(["the signing key must be an RSA or an EC (ECDSA) key"])
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
        chain = [c for pem in chain_pems for c in x509.load_pem_x509_certificates(pem)]
    except ValueError as exc:
        raise SettingsError(["the signing certificate is not a PEM certificate"]) from exc
    certificate, intermediates = certs[0], (*certs[1:], *chain)
    if _spki(certificate.public_key()) != _spki(private_key.public_key()):
        raise SettingsError(
            [f"the signing key does not belong to {certificate.subject.rfc4514_string()}"]
        )
    return SigningKey(
        private_key=private_key, certificate=certificate, chain=intermediates, digest=digest
    )


def _spki(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def sign(root: etree._Element, key: SigningKey) -> etree._Element:
    """A new tree: ``root`` with an enveloped signature appended as its last child.

    Refuses (``SignatureWrapping``) a document that already carries a signature: sign the
    verified content, never a signed document a second time.
    """
    if next(root.iter(_SIGNATURE), None) is not None:
        raise SignatureWrapping(
            "The document already carries a ds:Signature; sign the verified content instead."
        )
    try:
        return sign_enveloped(
            root, key.private_key, [key.certificate, *key.chain], digest_name=key.digest
        )
    except (ValueError, TypeError) as exc:
        raise SignatureInvalid(f"The document could not be signed: {exc}") from exc


def verify(root: etree._Element, trust: TrustStore, *, now: datetime) -> Verified:
    """Verify the document's signature and that its signer may sign for the header's sender.

    Raises a ``SignatureProblem`` subclass (``Unsigned``, ``SignatureWrapping``,
    ``AlgorithmForbidden``, ``SignatureInvalid``, ``DigestMismatch``, ``CertificateUntrusted``,
    ``SenderMismatch``, ``CertificateUsage``, ``CertificateRevoked``, ``CertificateExpired``,
    ``RevocationUnknown``), or ``HeaderInvalid`` when the signed header cannot be read.
    """
    signature = _the_signature(root)
    algorithms = _check_shape(signature)
    _refuse_split_text(root)
    leaf, intermediates = _certificates(signature)
    signed_root = _check_signature(root, signature, leaf, algorithms)
    # The sender is read from the signed content only, never from the input tree.
    envelope = read_envelope(signed_root)
    trusted = trust.check_signer(leaf, intermediates, sender=envelope.sender.country, now=now)
    return Verified(
        root=signed_root, envelope=envelope, signer=trusted.signer, warnings=trusted.warnings
    )


def _the_signature(root: etree._Element) -> etree._Element:
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise Unsigned("The document carries no ds:Signature.")
    if len(signatures) > 1:
        raise SignatureWrapping(
            f"The document carries {len(signatures)} ds:Signature elements; exactly one, "
            "the last child of the root element, is accepted."
        )
    signature = signatures[0]
    if signature.getparent() is not root:
        raise SignatureWrapping(
            "The ds:Signature is not a child of the document's root element "
            f"(found under {signature.getparent().tag!s})."  # type: ignore[union-attr]
        )
    if signature.getnext() is not None:
        raise SignatureWrapping("The ds:Signature must be the last child of the root element.")
    return signature


def _children(parent: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for child in parent.iterchildren("*"):
        found.setdefault(child.tag, []).append(child)
    return found


def _algorithm(nodes: dict[str, list[etree._Element]], name: str) -> str:
    matches = nodes.get(_DS + name, ())
    if len(matches) != 1:
        raise SignatureInvalid(f"The signature must have exactly one {name}.")
    return matches[0].get("Algorithm") or ""


class _Algorithms(NamedTuple):
    """What the pinned-profile check read from SignedInfo, for the verification itself."""

    method_uri: str
    digest_name: str  # sha256 | sha384 | sha512


def _check_shape(signature: etree._Element) -> _Algorithms:
    parts = _children(signature)
    if any(tag not in _SIGNATURE_CHILDREN for tag in parts):
        raise SignatureWrapping(
            "The ds:Signature holds elements other than SignedInfo, SignatureValue and KeyInfo "
            "(ds:Object is not accepted)."
        )
    for part in ("SignedInfo", "SignatureValue", "KeyInfo"):
        if len(parts.get(_DS + part, ())) != 1:
            raise SignatureInvalid(f"The signature must have exactly one {part}.")
    signed_infos = parts[_DS + "SignedInfo"]
    signed_info = _children(signed_infos[0])
    c14n = _algorithm(signed_info, "CanonicalizationMethod")
    if c14n != EXC_C14N:
        raise AlgorithmForbidden(
            f"The SignedInfo canonicalisation {c14n!r} is not accepted (only {EXC_C14N})."
        )
    method = _algorithm(signed_info, "SignatureMethod")
    if method not in _PINNED_SIGNATURE_URIS:
        raise AlgorithmForbidden(
            f"The signature method {method!r} is not accepted; use RSA or ECDSA with "
            "SHA-256, SHA-384 or SHA-512."
        )
    references = signed_info.get(_DS + "Reference", [])
    if len(references) != 1:
        raise SignatureWrapping(
            f"The signature has {len(references)} references; exactly one, to the whole "
            'document (URI=""), is accepted.'
        )
    uri = references[0].get("URI")
    if uri != "":
        raise SignatureWrapping(
            f'The signature references {uri!r}; only the whole document (URI="") is accepted.'
        )
    reference = _children(references[0])
    transforms = tuple(
        t.get("Algorithm") or ""
        for node in reference.get(_DS + "Transforms", ())
        for t in node.iterchildren("*")
    )
    unknown = [t for t in transforms if t not in _TRANSFORMS]
    if unknown:
        raise AlgorithmForbidden(f"The reference uses forbidden transforms: {', '.join(unknown)}.")
    if transforms != _TRANSFORMS:
        raise SignatureWrapping(
            "The reference transforms must be exactly enveloped-signature then exclusive C14N."
        )
    if len(reference.get(_DS + "DigestValue", ())) != 1:
        raise SignatureInvalid("The reference must have exactly one DigestValue.")
    digest = _algorithm(reference, "DigestMethod")
    if digest not in _PINNED_DIGEST_URIS:
        raise AlgorithmForbidden(
            f"The digest method {digest!r} is not accepted; use SHA-256, SHA-384 or SHA-512."
        )
    return _Algorithms(method, DIGEST_BY_URI[digest])


def _refuse_split_text(root: etree._Element) -> None:
    """Refuse comments inside text: they are not signed, and they cut text nodes in two."""
    for comment in root.iter(etree.Comment):
        previous = comment.getprevious()
        before = previous.tail if previous is not None else comment.getparent().text  # type: ignore[union-attr]
        if (before and before.strip()) or (comment.tail and comment.tail.strip()):
            raise SignatureWrapping(
                "A comment splits the text of a signed element; comments are not signed and "
                "are not accepted inside text."
            )


def signer_chain(root: etree._Element) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The signing certificate and its intermediates, as carried in the document's KeyInfo.

    For re-checking trust (revocation, validity, sender country) on bytes whose signature was
    already verified; it proves nothing about the bytes by itself.
    """
    return _certificates(_the_signature(root))


def _certificates(
    signature: etree._Element,
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    texts = [
        node.text or ""
        for node in signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    ]
    if not texts:
        raise SignatureInvalid("The signature carries no certificate in KeyInfo/X509Data.")
    try:
        certs = [_load_certificate(t) for t in texts]
    except (ValueError, binascii.Error) as exc:
        raise SignatureInvalid("A certificate in KeyInfo/X509Data cannot be read.") from exc
    issuers = {c.issuer for c in certs}
    leaves = [c for c in certs if c.subject not in issuers or c.subject == c.issuer]
    leaf = leaves[0] if leaves else certs[0]
    return leaf, tuple(c for c in certs if c is not leaf)


@functools.lru_cache(maxsize=1024)
def _load_certificate(text: str) -> x509.Certificate:
    """Decode one X509Certificate element; the same few certificates arrive again and again."""
    return x509.load_der_x509_certificate(decode_base64_text(text))


def _check_signature(
    root: etree._Element,
    signature: etree._Element,
    leaf: x509.Certificate,
    algorithms: _Algorithms,
) -> etree._Element:
    """Digest and signature value, with the signer's key; the one seam for their errors.

    Returns the tree of the canonical bytes the digest covered, and nothing of the input.
    """
    try:
        canonical = verify_enveloped(
            root,
            signature,
            leaf.public_key(),
            digest_name=algorithms.digest_name,
            method_uri=algorithms.method_uri,
        )
    except DigestDiffers as exc:
        raise DigestMismatch(f"The document was changed after it was signed ({exc})") from exc
    except ValueRefused as exc:
        raise SignatureInvalid(str(exc)) from exc
    try:
        return etree.fromstring(canonical.signed, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:  # canonical XML of a parsed tree always parses
        raise SignatureInvalid(f"The signed content cannot be read: {exc}") from exc
