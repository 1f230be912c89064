"""XML-DSig for the one profile the gateway uses: an enveloped signature over the whole document.

The profile (checked by ``gateway.core.signatures`` before anything here runs): one
``ds:Signature``, the last child of the root; ``SignedInfo`` canonicalised with exclusive C14N;
one ``Reference URI=""`` with exactly the transforms enveloped-signature then exclusive C14N;
RSA (PKCS#1 v1.5) or ECDSA with SHA-256, SHA-384 or SHA-512.

For this profile verifying is: canonicalise the document without its signature (libxml2's
exclusive C14N), compare its digest, canonicalise ``SignedInfo`` and check the signature value
with the certificate's key (cryptography). A general XML-DSig library does the same with more
generality and more work: signxml serialises and re-parses the document five times per
verification, and its bare verify takes about 1.6 times as long as the gateway's whole one,
hardened parse and trust checks included (bench/bench_signatures.py, 5 KB Form D). signxml and
xmlsec1 stay in the tests as independent judges of what this module signs and accepts.

Only the canonical bytes that were digested are handed back (``Canonical.signed``), so callers
read exactly what the signature covers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.core.envelope import NS_DSIG

EXC_C14N_URI: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED_URI: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

DIGESTS: Final[dict[str, tuple[str, str, str]]] = {
    # name: (DigestMethod URI, RSA SignatureMethod URI, ECDSA SignatureMethod URI)
    "sha256": (
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    ),
    "sha384": (
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    ),
    "sha512": (
        "http://www.w3.org/2001/04/xmlenc#sha512",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    ),
}
_HASHES: Final[dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
DIGEST_BY_URI: Final = {uris[0]: name for name, uris in DIGESTS.items()}
# SignatureMethod URI -> (hash name, "rsa" | "ecdsa")
SIGNATURE_BY_URI: Final = {
    uri: (name, kind)
    for name, uris in DIGESTS.items()
    for uri, kind in ((uris[1], "rsa"), (uris[2], "ecdsa"))
}

_DS: Final = f"{{{NS_DSIG}}}"
_PREFIX_LIST: Final = f"{{{EXC_C14N_URI}}}InclusiveNamespaces"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class DsigError(Exception):
    """Base of what this module raises; ``gateway.core.signatures`` maps each to an error code."""


class DigestDiffers(DsigError):
    """The canonical document does not hash to the reference's DigestValue."""


class ValueRefused(DsigError):
    """The SignatureValue does not verify with the certificate's key (or cannot be read)."""


@dataclass(frozen=True, slots=True)
class Canonical:
    """What a verified signature covers: the canonical document without its signature."""

    signed: bytes


def _prefixes(method: etree._Element | None) -> list[str] | None:
    """The ``InclusiveNamespaces PrefixList`` of an exclusive-C14N method, if it has one."""
    if method is None:
        return None
    for node in method:
        if node.tag == _PREFIX_LIST:
            return (node.get("PrefixList") or "").split() or None
    return None


def canonicalize(node: etree._Element | etree._ElementTree, prefixes: list[str] | None) -> bytes:
    """Exclusive C14N 1.0 without comments of ``node`` (a whole document or one element)."""
    return etree.tostring(
        node, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes
    )


def _without_signature(root: etree._Element) -> etree._Element:
    """A copy of the document with its last child, the signature, removed.

    The enveloped-signature transform removes the element only: text after it (its ``tail`` in
    lxml) stays, so it moves to what precedes the signature.
    """
    clone = copy.deepcopy(root)
    signature = clone[-1]
    if signature.tag != f"{_DS}Signature":
        raise ValueRefused("The signature is not the last child of the document's root.")
    if signature.tail:
        previous = signature.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + signature.tail
        else:
            clone.text = (clone.text or "") + signature.tail
    clone.remove(signature)
    return clone


def decode_base64_text(text: str | None) -> bytes:
    """The bytes of a base64 element text (line breaks and spaces inside it are allowed)."""
    return base64.b64decode("".join((text or "").split()), validate=True)


def _digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def verify_enveloped(
    root: etree._Element,
    signature: etree._Element,
    public_key: object,
    *,
    digest_name: str,
    method_uri: str,
) -> Canonical:
    """Check the enveloped ``signature`` (the last child of ``root``) with ``public_key``.

    ``digest_name`` is the reference's digest (``sha256`` ...) and ``method_uri`` the
    SignatureMethod, both already checked against the pinned profile by the caller. The
    signature value over ``SignedInfo`` is checked first (``ValueRefused``), then the digest of
    the document it names (``DigestDiffers``).
    """
    signed_info = signature.find(f"{_DS}SignedInfo")
    reference = signed_info.find(f"{_DS}Reference") if signed_info is not None else None
    if signed_info is None or reference is None:
        raise ValueRefused("The signature has no SignedInfo/Reference.")
    method = signed_info.find(f"{_DS}CanonicalizationMethod")
    signed_info_c14n = canonicalize(signed_info, _prefixes(method))
    try:
        value = decode_base64_text(signature.findtext(f"{_DS}SignatureValue"))
    except (ValueError, binascii.Error) as exc:
        raise ValueRefused("The SignatureValue is not base64.") from exc
    hash_name, kind = SIGNATURE_BY_URI[method_uri]
    algorithm = _HASHES[hash_name]()
    try:
        if kind == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, signed_info_c14n, padding.PKCS1v15(), algorithm)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(
                _der_from_raw(value, public_key.curve), signed_info_c14n, ec.ECDSA(algorithm)
            )
        else:
            raise ValueRefused(
                f"The certificate's key does not fit the signature method {method_uri}."
            )
    except InvalidSignature as exc:
        raise ValueRefused("The signature value does not verify with the certificate.") from exc
    # SignedInfo is authentic from here on; now the one reference it names.
    transforms = reference.findall(f"{_DS}Transforms/{_DS}Transform")
    document = canonicalize(_without_signature(root).getroottree(), _prefixes(transforms[-1]))
    try:
        expected = decode_base64_text(reference.findtext(f"{_DS}DigestValue"))
    except (ValueError, binascii.Error) as exc:
        raise DigestDiffers("The DigestValue is not base64.") from exc
    if not hmac.compare_digest(_digest(digest_name, document), expected):
        raise DigestDiffers("The document's digest differs from the signed DigestValue.")
    return Canonical(signed=document)


def _curve_bytes(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def _der_from_raw(value: bytes, curve: ec.EllipticCurve) -> bytes:
    """XML-DSig carries ECDSA as r || s (RFC 4050/6931); cryptography wants DER."""
    size = _curve_bytes(curve)
    if len(value) != 2 * size:
        raise ValueRefused(f"The ECDSA signature value is {len(value)} bytes, not {2 * size}.")
    return encode_dss_signature(
        int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
    )


def _raw_from_der(value: bytes, curve: ec.EllipticCurve) -> bytes:
    size = _curve_bytes(curve)
    r, s = decode_dss_signature(value)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _sub(parent: etree._Element, name: str, algorithm: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{_DS}{name}")
    if algorithm is not None:
        node.set("Algorithm", algorithm)
    return node


def sign_enveloped(
    root: etree._Element,
    private_key: PrivateKey,
    certificates: list[x509.Certificate],
    *,
    digest_name: str,
) -> etree._Element:
    """A copy of ``root`` with an enveloped signature appended as its last child.

    ``certificates``: the signing certificate first, then the intermediates, all carried in
    ``KeyInfo/X509Data``.
    """
    signed = copy.deepcopy(root)
    digest_uri, rsa_uri, ecdsa_uri = DIGESTS[digest_name]
    is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
    document = canonicalize(signed.getroottree(), None)
    signature = etree.SubElement(signed, f"{_DS}Signature", nsmap={"ds": NS_DSIG})
    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", EXC_C14N_URI)
    _sub(signed_info, "SignatureMethod", rsa_uri if is_rsa else ecdsa_uri)
    reference = _sub(signed_info, "Reference")
    reference.set("URI", "")
    transforms = _sub(reference, "Transforms")
    _sub(transforms, "Transform", ENVELOPED_URI)
    _sub(transforms, "Transform", EXC_C14N_URI)
    _sub(reference, "DigestMethod", digest_uri)
    _sub(reference, "DigestValue").text = base64.b64encode(_digest(digest_name, document)).decode(
        "ascii"
    )
    to_sign = canonicalize(signed_info, None)
    algorithm = _HASHES[digest_name]()
    if isinstance(private_key, rsa.RSAPrivateKey):
        value = private_key.sign(to_sign, padding.PKCS1v15(), algorithm)
    else:
        value = _raw_from_der(private_key.sign(to_sign, ec.ECDSA(algorithm)), private_key.curve)
    _sub(signature, "SignatureValue").text = base64.b64encode(value).decode("ascii")
    x509_data = _sub(_sub(signature, "KeyInfo"), "X509Data")
    for certificate in certificates:
        der = certificate.public_bytes(Encoding.DER)
        _sub(x509_data, "X509Certificate").text = base64.b64encode(der).decode("ascii")
    return signed
