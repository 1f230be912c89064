"""Enveloped XML signatures over whole exchange documents: sign, and verify against trust.

signxml is the signature engine: it canonicalises, digests, signs and checks signature values.
The gateway pins the one shape it makes and accepts, and checks it *before* signxml runs:

- a single ``ds:Signature``, the last child of the document's root, holding exactly
  ``SignedInfo``, ``SignatureValue`` and ``KeyInfo`` (in that order, nothing else);
- ``SignedInfo`` is exactly ``CanonicalizationMethod`` (exclusive C14N), ``SignatureMethod``
  (RSA PKCS#1 v1.5 or ECDSA with SHA-256/384/512) and one ``Reference URI=""`` whose
  ``Transforms`` are exactly enveloped-signature then exclusive C14N, with a SHA-256/384/512
  ``DigestMethod``; the only element of another namespace allowed anywhere in it is the
  exclusive C14N ``InclusiveNamespaces PrefixList`` on the two exclusive C14N methods;
- ``KeyInfo`` holds one ``X509Data`` holding only ``X509Certificate`` elements: at most
  ``MAX_CERTIFICATES``, each at most ``MAX_CERTIFICATE_BYTES`` of DER, none with an RSA key
  over 8192 bits or a public exponent over 2^32 (such keys make every later check costly);
  each is parsed once per document, through a cache keyed by DER, bounded by bytes and filled
  only from signatures that verified;
- every base64 value (``DigestValue``, ``SignatureValue``, ``X509Certificate``) is canonical:
  the standard alphabet with ``=`` padding and zero trailing bits, optionally folded with XML
  whitespace (space, tab, CR, LF, as signxml and xmlsec1 fold certificates); anything else is
  refused;
- nothing outside the signed content: no comment or processing instruction anywhere (the
  exclusive C14N the signature uses does not cover comments), nothing beside the root, no text
  in the signature's structure. What is stored and delivered is what was signed plus its
  signature.

The leaf is the one certificate in ``KeyInfo`` that issued no other (their order does not
matter) and its key must be RSA of 2048 to 8192 bits with the exponent 65537, or ECDSA on P-256,
P-384 or P-521, before signxml spends anything on it. signxml is handed that leaf
(``x509_cert``), so it does no certificate-authority work of its own; the trust store decides
afterwards, at the caller's ``now``, whether the leaf may sign for the header's sender. After
verification only signxml's ``signed_xml`` (the tree re-read from the canonical bytes the digest
covered) is handed on: the caller never reads the unverified input.
"""

from __future__ import annotations

import base64
import copy
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, SignXMLException
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.core.envelope import NS_DSIG, Envelope, read_envelope
from gateway.core.parsing import hardened_parser
from gateway.core.trust import MAX_RSA_BITS, Signer, TrustStore, check_key, subject_of
from gateway.errors import (
    AlgorithmForbidden,
    CertificateExpired,
    DigestMismatch,
    KeyTooWeak,
    SettingsError,
    SignatureInvalid,
    SignatureWrapping,
    Unsigned,
)

__all__ = [
    "EXC_C14N",
    "MAX_CERTIFICATES",
    "MAX_CERTIFICATE_BYTES",
    "Signer",
    "SigningKey",
    "Verified",
    "load_signing_key",
    "sign",
    "signer_chain",
    "verify",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

EXC_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
ENVELOPED: Final = SignatureConstructionMethod.enveloped.value

MAX_CERTIFICATES: Final = 10  # a real chain carries 2 to 4
MAX_CERTIFICATE_BYTES: Final = 16 * 1024  # DER, per certificate
MAX_SIGNATURE_VALUE_BYTES: Final = 1024  # an RSA-8192 signature
_MAX_RSA_EXPONENT: Final = 2**32

# name: (DigestMethod, RSA SignatureMethod, ECDSA SignatureMethod)
DIGESTS: Final[dict[str, tuple[DigestAlgorithm, SignatureMethod, SignatureMethod]]] = {
    "sha256": (DigestAlgorithm.SHA256, SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256),
    "sha384": (DigestAlgorithm.SHA384, SignatureMethod.RSA_SHA384, SignatureMethod.ECDSA_SHA384),
    "sha512": (DigestAlgorithm.SHA512, SignatureMethod.RSA_SHA512, SignatureMethod.ECDSA_SHA512),
}
_DIGEST_SIZES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}
_DIGEST_BY_URI: Final = {uris[0].value: name for name, uris in DIGESTS.items()}
_RSA_METHODS: Final = frozenset(uris[1] for uris in DIGESTS.values())
_ECDSA_METHODS: Final = frozenset(uris[2] for uris in DIGESTS.values())
_METHOD_BY_URI: Final = {m.value: m for m in _RSA_METHODS | _ECDSA_METHODS}

_DS: Final = f"{{{NS_DSIG}}}"
_EC: Final = f"{{{EXC_C14N}}}"
_SIGNATURE: Final = f"{_DS}Signature"
_INCLUSIVE_NAMESPACES: Final = f"{_EC}InclusiveNamespaces"
# PrefixList: single-space separated prefixes (NCNames) or #default.
_PREFIX_LIST: Final = re.compile(
    r"(?:#default|[A-Za-z_][\w.\-]*)(?: (?:#default|[A-Za-z_][\w.\-]*))*"
)
_BASE64_FOLDING: Final = str.maketrans("", "", " \t\r\n")

_CONFIG_DIGESTS: Final = frozenset(uris[0] for uris in DIGESTS.values())


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
        is_rsa = isinstance(self.private_key, rsa.RSAPrivateKey)
        return (rsa_method if is_rsa else ec_method).value

    @property
    def digest_algorithm(self) -> str:
        """The URI of the XML-DSig DigestMethod of the reference."""
        return DIGESTS[self.digest][0].value


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A document whose signature verified and whose signer is trusted for its sender."""

    root: etree._Element  # signxml's signed_xml: the signed content, without the ds:Signature
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


class _Signer(XMLSigner):
    """signxml's signer, copying a whole document with ``deepcopy`` instead of re-parsing.

    signxml re-serialises and re-parses its input (twice per signature) because ``deepcopy``
    of an element *inside* a document may lose namespace declarations of its ancestors; the
    gateway always signs a document's root element, which carries its own declarations.

    The copy loses the namespace declarations nothing in the document uses
    (``drop_unused_namespaces``): exclusive C14N leaves them out of what the signature covers
    anyway, so the digest is the same, and the signed document no longer carries them.
    """

    def get_root(self, data: object) -> etree._Element:
        if isinstance(data, etree._Element) and data.getparent() is None:
            root = copy.deepcopy(data)
            drop_unused_namespaces(root)
            return root
        parsed: etree._Element = super().get_root(data)  # type: ignore[no-untyped-call]
        return parsed


_PREFIX_IN_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*):")


def drop_unused_namespaces(root: etree._Element) -> None:
    """Remove, in place, the namespace declarations no element or attribute name uses.

    Safe only where the prefix is nowhere else: a prefix that appears in an attribute value or
    in text (a QName such as ``xsi:type="cm:Party"``, an XPath) is kept, whether or not a name
    uses it. Exclusive C14N outputs a declaration only where a name visibly uses it, so the
    canonical form, and with it every digest, is the same before and after.
    """
    named: set[str] = set()
    for node in root.iter(etree.Element):  # elements only: no comments, no PIs
        for value in (node.text, *node.attrib.values()):
            if value and ":" in value:
                named.update(_PREFIX_IN_VALUE.findall(value))
    etree.cleanup_namespaces(root, keep_ns_prefixes=sorted(named))


class _Verifier(XMLVerifier):
    """signxml's verifier, reading the gateway's already parsed tree without a first copy.

    ``XMLVerifier.verify`` only reads the tree it is given (it verifies copies it makes
    itself), and the gateway's tree was parsed by the hardened parser, so the defensive
    re-parse of the input is skipped; every later step is signxml's own.
    """

    def get_root(self, data: object) -> etree._Element:
        if isinstance(data, etree._Element) and data.getparent() is None:
            return data
        root: etree._Element = super().get_root(data)  # type: ignore[no-untyped-call]
        return root


def sign(root: etree._Element, key: SigningKey) -> etree._Element:
    """A new tree: ``root`` with an enveloped signature (made by signxml) as its last child.

    Comments and processing instructions are left out of the signed tree (the signature would
    not cover them).

    Refuses (``SignatureWrapping``) a document that already carries a signature: sign the
    verified content, never a signed document a second time.
    """
    if next(root.iter(_SIGNATURE), None) is not None:
        raise SignatureWrapping(
            "The document already carries a ds:Signature; sign the verified content instead."
        )
    if next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is not None:
        # Exclusive C14N without comments does not cover them: what the gateway signs carries
        # none, so the signed document is exactly what the signature covers.
        root = copy.deepcopy(root)
        etree.strip_elements(root, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    signer = _Signer(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.signature_method,
        digest_algorithm=key.digest_algorithm,
        c14n_algorithm=EXC_C14N,
    )
    try:
        signed: etree._Element = signer.sign(
            root, key=key.private_key, cert=[key.certificate, *key.chain]
        )
    except (SignXMLException, ValueError, TypeError) as exc:
        raise SignatureInvalid(f"The document could not be signed: {exc}") from exc
    return signed


def verify(root: etree._Element, trust: TrustStore, *, now: datetime) -> Verified:
    """Verify the document's signature and that its signer may sign for the header's sender.

    Raises a ``SignatureProblem`` subclass (``Unsigned``, ``SignatureWrapping``,
    ``AlgorithmForbidden``, ``KeyTooWeak``, ``SignatureInvalid``, ``DigestMismatch``,
    ``CertificateUntrusted``, ``SenderMismatch``, ``CertificateUsage``, ``CertificateRevoked``,
    ``CertificateExpired``, ``RevocationUnknown``), or ``HeaderInvalid`` when the signed header
    cannot be read.
    """
    signature = _the_signature(root)
    _refuse_unsigned_nodes(root)
    method = _check_shape(signature)
    certificates = _read_certificates(signature)
    leaf, intermediates = _pick_leaf(certificates)
    _check_leaf_key(leaf.certificate, method)
    chain = tuple(c.certificate for c in intermediates)
    # Trust before work: a signer that no CA of the sender named in the header (as sent)
    # vouches for is refused before signxml canonicalises and digests the document, so an
    # untrusted caller cannot buy up to 8 MiB of C14N. A success is cached by the chain, so the
    # decision below, on the sender of the signed content, costs a lookup.
    trust.check_signer(leaf.certificate, chain, sender=read_envelope(root).sender.country, now=now)
    signed_root = _check_signature(root, leaf.certificate, method)
    _CACHE.add(certificates)  # only certificates of a signature that verified
    # The sender that counts is read from the signed content only, never from the input tree.
    envelope = read_envelope(signed_root)
    trusted = trust.check_signer(leaf.certificate, chain, sender=envelope.sender.country, now=now)
    return Verified(
        root=signed_root, envelope=envelope, signer=trusted.signer, warnings=trusted.warnings
    )


def signer_chain(root: etree._Element) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The signing certificate and its intermediates, as carried in the document's KeyInfo.

    For re-checking trust (revocation, validity, sender country) on bytes whose signature was
    already verified; it proves nothing about the bytes by itself. The same limits apply as in
    ``verify``.
    """
    leaf, intermediates = _pick_leaf(_read_certificates(_the_signature(root)))
    return leaf.certificate, tuple(c.certificate for c in intermediates)


# --- shape -----------------------------------------------------------------------------------


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


def _refuse_unsigned_nodes(root: etree._Element) -> None:
    """Refuse what the signature does not cover: comments, processing instructions, text
    beside the root. Exclusive C14N without comments leaves comments out of the digest, so a
    document carrying one would be stored and delivered with content nobody signed."""
    if root.getprevious() is not None or root.getnext() is not None:
        raise SignatureWrapping(
            "The document has a comment or processing instruction outside its root element; "
            "it is not signed and is not accepted."
        )
    if root.tail is not None and root.tail.strip():
        raise SignatureWrapping("The document has text after its root element.")
    for node in root.iter(etree.Comment, etree.ProcessingInstruction, etree.Entity):
        kind = "comment" if isinstance(node, etree._Comment) else "processing instruction"
        raise SignatureWrapping(
            f"The document contains a {kind}; it is not covered by the signature "
            "(exclusive canonicalisation without comments), so it is not accepted in a signed "
            "document."
        )


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _element_only(node: etree._Element, what: str) -> list[etree._Element]:
    """The children of ``node`` (elements only), refusing text between them."""
    children = list(node)
    if not _blank(node.text) or any(not _blank(child.tail) for child in children):
        raise SignatureInvalid(f"The signature's {what} holds text; it may hold elements only.")
    return children


def _attributes(node: etree._Element, allowed: frozenset[str], what: str) -> None:
    extra = [str(name) for name in node.attrib if name not in allowed]
    if extra:
        extra.sort()
        raise SignatureWrapping(
            f"The signature's {what} carries attributes that are not accepted: {', '.join(extra)}."
        )


def _leaf_value(node: etree._Element, what: str) -> str:
    """The text of an element that must hold text only (no child elements, no attributes)."""
    if len(node):
        raise SignatureInvalid(f"The signature's {what} may hold text only, not elements.")
    _attributes(node, _ID, what)
    return node.text or ""


_NONE: Final[frozenset[str]] = frozenset()
_ID: Final = frozenset({"Id"})
_ALGORITHM: Final = frozenset({"Algorithm"})


def _expect(
    children: list[etree._Element],
    names: Sequence[str],
    what: str,
    *,
    error: type[SignatureInvalid] | type[SignatureWrapping] = SignatureWrapping,
) -> None:
    """``children`` are exactly the XML-DSig elements ``names``, in that order."""
    found = [c.tag for c in children]
    wanted = [f"{_DS}{n}" for n in names]
    if found == wanted:
        return
    for tag in found:
        if tag not in wanted:
            raise SignatureWrapping(
                f"The signature's {what} holds an element that is not accepted there "
                f"({tag!s}); it must hold exactly {', '.join(names)}."
            )
    raise error(f"The signature's {what} must hold exactly {', '.join(names)}, in that order.")


def _c14n_method(node: etree._Element, what: str) -> None:
    """An exclusive C14N method: ``Algorithm`` and at most one ``InclusiveNamespaces``."""
    _attributes(node, _ALGORITHM, what)
    algorithm = node.get("Algorithm") or ""
    if algorithm != EXC_C14N:
        raise AlgorithmForbidden(
            f"The {what} {algorithm!r} is not accepted (only exclusive C14N, {EXC_C14N})."
        )
    children = list(node)
    if not _blank(node.text) or any(not _blank(c.tail) for c in children):
        raise SignatureInvalid(f"The signature's {what} holds text.")
    if not children:
        return
    if len(children) > 1 or children[0].tag != _INCLUSIVE_NAMESPACES:
        raise SignatureWrapping(
            f"The signature's {what} may hold only one exclusive C14N InclusiveNamespaces."
        )
    prefixes = children[0]
    _attributes(prefixes, frozenset({"PrefixList"}), "InclusiveNamespaces")
    if len(prefixes) or not _blank(prefixes.text):
        raise SignatureInvalid("The InclusiveNamespaces element must be empty.")
    if _PREFIX_LIST.fullmatch(prefixes.get("PrefixList") or "") is None:
        raise SignatureInvalid(
            "The InclusiveNamespaces PrefixList must be namespace prefixes separated by "
            "single spaces."
        )


def _no_children(node: etree._Element, what: str) -> None:
    if len(node) or not _blank(node.text):
        raise SignatureWrapping(f"The signature's {what} must be empty.")


_SIGNATURE_PARTS: Final = (f"{_DS}SignedInfo", f"{_DS}SignatureValue", f"{_DS}KeyInfo")


def _check_shape(signature: etree._Element) -> SignatureMethod:
    """The pinned profile, before any cryptography; returns the signature method."""
    _attributes(signature, _ID, "Signature")
    parts = _element_only(signature, "Signature")
    if any(p.tag not in _SIGNATURE_PARTS for p in parts):
        raise SignatureWrapping(
            "The ds:Signature holds elements other than SignedInfo, SignatureValue and KeyInfo "
            "(ds:Object is not accepted)."
        )
    _expect(parts, ("SignedInfo", "SignatureValue", "KeyInfo"), "Signature", error=SignatureInvalid)
    signed_info, signature_value, key_info = parts
    method = _check_signed_info(signed_info)
    _decode_base64(
        _leaf_value(signature_value, "SignatureValue"), "SignatureValue", MAX_SIGNATURE_VALUE_BYTES
    )
    _check_key_info(key_info)
    return method


def _check_signed_info(signed_info: etree._Element) -> SignatureMethod:
    _attributes(signed_info, _ID, "SignedInfo")
    info = _element_only(signed_info, "SignedInfo")
    references = [c for c in info if c.tag == f"{_DS}Reference"]
    if len(references) != 1:
        raise SignatureWrapping(
            f"The signature has {len(references)} references; exactly one, to the whole "
            'document (URI=""), is accepted.'
        )
    _expect(
        info,
        ("CanonicalizationMethod", "SignatureMethod", "Reference"),
        "SignedInfo",
        error=SignatureInvalid,
    )
    c14n, method_node, reference = info
    _c14n_method(c14n, "SignedInfo canonicalisation")
    _attributes(method_node, _ALGORITHM, "SignatureMethod")
    method = _METHOD_BY_URI.get(method_node.get("Algorithm") or "")
    if method is None:
        raise AlgorithmForbidden(
            f"The signature method {method_node.get('Algorithm')!r} is not accepted; use RSA "
            "or ECDSA with SHA-256, SHA-384 or SHA-512."
        )
    _no_children(method_node, "SignatureMethod")
    _check_reference(reference)
    return method


def _check_reference(reference: etree._Element) -> None:
    _attributes(reference, frozenset({"URI", "Id", "Type"}), "Reference")
    uri = reference.get("URI")
    if uri != "":
        raise SignatureWrapping(
            f'The signature references {uri!r}; only the whole document (URI="") is accepted.'
        )
    ref_parts = _element_only(reference, "Reference")
    _expect(
        ref_parts,
        ("Transforms", "DigestMethod", "DigestValue"),
        "Reference",
        error=SignatureInvalid,
    )
    transforms_node, digest_method, digest_value = ref_parts
    _attributes(transforms_node, _NONE, "Transforms")
    transforms = _element_only(transforms_node, "Transforms")
    if any(t.tag != f"{_DS}Transform" for t in transforms):
        raise SignatureWrapping(
            "The reference's Transforms may hold only ds:Transform elements (enveloped-signature "
            "then exclusive C14N)."
        )
    algorithms = [t.get("Algorithm") or "" for t in transforms]
    unknown = [a for a in algorithms if a not in (ENVELOPED, EXC_C14N)]
    if unknown:
        raise AlgorithmForbidden(f"The reference uses forbidden transforms: {', '.join(unknown)}.")
    if algorithms != [ENVELOPED, EXC_C14N]:
        raise SignatureWrapping(
            "The reference transforms must be exactly enveloped-signature then exclusive C14N."
        )
    _attributes(transforms[0], _ALGORITHM, "enveloped-signature Transform")
    _no_children(transforms[0], "enveloped-signature Transform")
    _c14n_method(transforms[1], "reference transform")
    _attributes(digest_method, _ALGORITHM, "DigestMethod")
    digest = _DIGEST_BY_URI.get(digest_method.get("Algorithm") or "")
    if digest is None:
        raise AlgorithmForbidden(
            f"The digest method {digest_method.get('Algorithm')!r} is not accepted; use "
            "SHA-256, SHA-384 or SHA-512."
        )
    _no_children(digest_method, "DigestMethod")
    _attributes(digest_value, _NONE, "DigestValue")
    value = _decode_base64(_leaf_value(digest_value, "DigestValue"), "DigestValue", 64)
    if len(value) != _DIGEST_SIZES[digest]:
        raise SignatureInvalid(
            f"The DigestValue is {len(value)} bytes; a {digest} digest has {_DIGEST_SIZES[digest]}."
        )


def _check_key_info(key_info: etree._Element) -> None:
    _attributes(key_info, _ID, "KeyInfo")
    holders = _element_only(key_info, "KeyInfo")
    if [h.tag for h in holders] != [f"{_DS}X509Data"]:
        raise SignatureInvalid(
            "The signature's KeyInfo must hold exactly one X509Data with the signing "
            "certificate (X509Certificate elements only; no KeyValue, KeyName, "
            "RetrievalMethod or other key references)."
        )
    _attributes(holders[0], _NONE, "X509Data")
    certificates = _element_only(holders[0], "X509Data")
    if any(c.tag != f"{_DS}X509Certificate" for c in certificates):
        raise SignatureInvalid(
            "The signature's X509Data may hold only X509Certificate elements (no "
            "X509IssuerSerial, X509SubjectName, X509SKI, X509CRL or others)."
        )


def _decode_base64(text: str, what: str, max_bytes: int) -> bytes:
    """Canonical base64 (folded with XML whitespace at most) of at most ``max_bytes``.

    The text length is checked before decoding, so an oversized value costs nothing.
    """
    if len(text) > 2 * max_bytes + 64:  # base64 is 4/3 of the bytes, plus generous folding
        raise SignatureInvalid(f"The {what} is larger than the {max_bytes:,} bytes accepted.")
    compact = text.translate(_BASE64_FOLDING)
    if not compact:
        raise SignatureInvalid(f"The {what} is empty.")
    try:
        value = base64.b64decode(compact, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise SignatureInvalid(f"The {what} is not base64.") from exc
    if base64.b64encode(value).decode("ascii") != compact:
        raise SignatureInvalid(
            f"The {what} is not canonical base64 (non-zero trailing bits or stray padding)."
        )
    if len(value) > max_bytes:
        raise SignatureInvalid(f"The {what} is larger than the {max_bytes:,} bytes accepted.")
    return value


# --- certificates --------------------------------------------------------------------------


class _Certificate(NamedTuple):
    der: bytes
    certificate: x509.Certificate


class _CertificateCache:
    """Parsed certificates keyed by their DER bytes, bounded by total DER bytes (LRU).

    Filled only with certificates of signatures that verified, so refused documents cannot
    pin memory; thread-safe, because verification runs in worker threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, der: bytes) -> x509.Certificate | None:
        with self._lock:
            found = self._entries.get(der)
            if found is not None:
                self._entries.move_to_end(der)
            return found

    def add(self, certificates: Iterable[_Certificate]) -> None:
        with self._lock:
            for der, certificate in certificates:
                if der in self._entries:
                    continue
                self._entries[der] = certificate
                self._bytes += len(der)
            while self._bytes > self._max_bytes and self._entries:
                old, _ = self._entries.popitem(last=False)
                self._bytes -= len(old)

    @property
    def total_bytes(self) -> int:
        """DER bytes held."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_CACHE: Final = _CertificateCache(max_bytes=512 * 1024)


def _read_certificates(signature: etree._Element) -> list[_Certificate]:
    """Decode and parse KeyInfo's certificates, once each, within the limits."""
    nodes = signature.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if not nodes:
        raise SignatureInvalid("The signature carries no certificate in KeyInfo/X509Data.")
    if len(nodes) > MAX_CERTIFICATES:
        raise SignatureInvalid(
            f"The signature carries {len(nodes)} certificates; at most {MAX_CERTIFICATES} "
            "(the signer and its intermediates) are accepted."
        )
    seen: dict[bytes, _Certificate] = {}
    for node in nodes:
        der = _decode_base64(
            _leaf_value(node, "X509Certificate"), "X509Certificate", MAX_CERTIFICATE_BYTES
        )
        if der in seen:
            continue
        certificate = _CACHE.get(der)
        if certificate is None:
            try:
                certificate = x509.load_der_x509_certificate(der)
            except ValueError as exc:
                raise SignatureInvalid("A certificate in KeyInfo/X509Data cannot be read.") from exc
        _refuse_costly_key(certificate)
        seen[der] = _Certificate(der, certificate)
    return list(seen.values())


def _refuse_costly_key(certificate: x509.Certificate) -> None:
    """Any certificate in KeyInfo: an RSA key whose use could cost more than a genuine one.

    Chain building checks each certificate's signature with its issuer's key; a huge public
    exponent or modulus makes that arbitrarily expensive. Refused before any such check (the
    trust store's key policy, RSA >= 2048 and EC >= P-256, comes on top).
    """
    try:
        key = certificate.public_key()
    except ValueError as exc:
        raise KeyTooWeak("A certificate in KeyInfo has a public key that cannot be read.") from exc
    if isinstance(key, rsa.RSAPublicKey) and (
        key.key_size > MAX_RSA_BITS or key.public_numbers().e > _MAX_RSA_EXPONENT
    ):
        raise KeyTooWeak(
            f"The certificate {subject_of(certificate)} in KeyInfo has an RSA key over "
            f"{MAX_RSA_BITS} bits or a public exponent over 2^32, which is not accepted."
        )


def _pick_leaf(
    certificates: list[_Certificate],
) -> tuple[_Certificate, tuple[_Certificate, ...]]:
    """The one certificate that issued none of the others (KeyInfo order does not matter)."""
    subjects_issuing = {
        c.certificate.issuer for c in certificates if c.certificate.issuer != c.certificate.subject
    }
    leaves = [c for c in certificates if c.certificate.subject not in subjects_issuing]
    if len(leaves) != 1:
        raise SignatureInvalid(
            "The certificates in KeyInfo do not name one signer: exactly one of them must "
            f"have issued none of the others ({len(leaves)} do)."
        )
    leaf = leaves[0]
    return leaf, tuple(c for c in certificates if c is not leaf)


def _check_leaf_key(leaf: x509.Certificate, method: SignatureMethod) -> None:
    """Key policy on the signer's public key (the trust store's), and that it fits ``method``.

    Cheap, and before any signature work.
    """
    check_key(leaf)
    is_rsa = isinstance(leaf.public_key(), rsa.RSAPublicKey)
    if method not in (_RSA_METHODS if is_rsa else _ECDSA_METHODS):
        raise SignatureInvalid(
            f"The signing certificate has an {'RSA' if is_rsa else 'EC'} key but the signature "
            f"method is {method.value}."
        )


# --- the signature itself (signxml) ----------------------------------------------------------


def _check_signature(
    root: etree._Element, leaf: x509.Certificate, method: SignatureMethod
) -> etree._Element:
    """signxml checks the signature value and the digest with the leaf's key.

    The one seam for signxml's errors. Returns signxml's ``signed_xml``: the tree re-read (with
    the gateway's hardened parser) from the canonical bytes the digest covered.
    """
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset({method}),
        digest_algorithms=_CONFIG_DIGESTS,
        # Validity at the caller's ``now`` is the trust store's decision, made right after; a
        # moment inside the leaf's own validity keeps signxml's clock out of it.
        verification_time=leaf.not_valid_before_utc,
    )
    try:
        # validate_schema=False: the shape check above is stricter than the XML-DSig schema
        # for this profile, and signxml's bundled schema lacks the exclusive C14N
        # InclusiveNamespaces element that the profile admits (xmlsec1 and others write it).
        result = _Verifier().verify(
            root,
            x509_cert=leaf,
            parser=hardened_parser(),
            expect_config=config,
            validate_schema=False,
        )
    except InvalidDigest as exc:
        raise DigestMismatch("The document was changed after it was signed.") from exc
    except InvalidCertificate as exc:
        raise CertificateExpired(
            f"The signing certificate {subject_of(leaf)} has no valid period."
        ) from exc
    except SignxmlInvalidSignature as exc:
        raise SignatureInvalid("The signature value does not verify with the certificate.") from exc
    except (SignXMLException, etree.DocumentInvalid, etree.XMLSyntaxError, ValueError) as exc:
        raise SignatureInvalid(f"The signature cannot be checked: {exc}") from exc
    if isinstance(result, list) or result.signed_xml is None:  # expect_references=1: one result
        raise SignatureInvalid("The signed content cannot be read.")
    signed: etree._Element = result.signed_xml
    return signed
