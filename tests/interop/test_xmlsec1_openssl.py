"""Interoperability with independent implementations: xmlsec1 (XML-DSig) and openssl (PKI).

xmlsec1 (libxmlsec1, not signxml) is the outside judge of the gateway's signatures, both ways:
it accepts what the gateway signs, the gateway accepts what it signs (with and without an
InclusiveNamespaces prefix list), and both refuse the same tampering.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from gateway.core.parsing import parse
from gateway.core.signatures import sign, verify
from gateway.errors import DigestMismatch, SignatureInvalid

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

XMLSEC1 = shutil.which("xmlsec1")
OPENSSL = shutil.which("openssl")
needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 is not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")

TEMPLATE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="{method}"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue/>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue/>
  <ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
</ds:Signature>"""
PREFIX_LIST = (
    '<ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" '
    'PrefixList="cm fdx"/>'
)
# The same template with an InclusiveNamespaces prefix list on both exclusive C14N methods.
TEMPLATE_WITH_PREFIXES = TEMPLATE.replace(
    'xml-exc-c14n#"/>', f'xml-exc-c14n#">{PREFIX_LIST}</ds:CanonicalizationMethod>', 1
).replace(
    '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
    f'<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#">{PREFIX_LIST}'
    "</ds:Transform>",
)
METHODS = {
    "rsa2048": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "p256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )


def _xmlsec_verify(document: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return _run(XMLSEC1, "--verify", "--trusted-pem", ca, document)


def _tamper(data: bytes) -> bytes:
    assert b"SG26-CO-0012345" in data
    return data.replace(b"SG26-CO-0012345", b"SG26-CO-0099999", 1)


@needs_xmlsec1
@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_our_signature_verifies_with_xmlsec1(
    any_pki: PkiBundle, tmp_path: Path, digest: str
) -> None:
    """A document signed by the gateway (signxml) verifies with xmlsec1 against SG's CA."""
    document = tmp_path / "signed.xml"
    signed = sign(parse(any_pki.sample()), any_pki.key("SG", digest=digest))
    document.write_bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
    result = _xmlsec_verify(document, any_pki.directory / "SG" / "ca.pem")
    assert result.returncode == 0, result.stderr


UNUSED_DECLARATIONS = (
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
)


@needs_xmlsec1
def test_unused_namespace_declarations_are_dropped_at_signing(
    rsa_pki: PkiBundle, tmp_path: Path
) -> None:
    """Declarations nothing uses go at signing (a prefix in a value stays); the digest is the
    one of the document as given, and xmlsec1 and the gateway both accept the signature."""
    sample = rsa_pki.sample()
    root_tag = sample[sample.index(b"<fd:EFormD ") :].split(b" ", 1)[0] + b" "
    given = sample.replace(
        root_tag, root_tag + UNUSED_DECLARATIONS + b'xmlns:q="urn:q" note="q:kept" ', 1
    ).replace(b"<cm:MessageHeader>", b'<cm:MessageHeader xmlns:z="urn:z">', 1)
    signed = etree.tostring(
        sign(parse(given), rsa_pki.key("SG")), xml_declaration=True, encoding="UTF-8"
    )

    for gone in (b"xmlns:xsi=", b"xmlns:xsd=", b"xmlns:z="):
        assert gone not in signed
    assert b'xmlns:q="urn:q"' in signed  # q is named in an attribute value
    digest = parse(signed).findtext(".//{http://www.w3.org/2000/09/xmldsig#}DigestValue")
    canonical = etree.tostring(parse(given), method="c14n", exclusive=True)
    assert digest == base64.b64encode(hashlib.sha256(canonical).digest()).decode()
    document = tmp_path / "signed.xml"
    document.write_bytes(signed)
    result = _xmlsec_verify(document, rsa_pki.directory / "SG" / "ca.pem")
    assert result.returncode == 0, result.stderr
    assert verify(parse(signed), rsa_pki.trust(), now=rsa_pki.created).signer.country == "SG"


@needs_xmlsec1
def test_xmlsec1_refuses_our_tampered_document(any_pki: PkiBundle, tmp_path: Path) -> None:
    """xmlsec1 and the gateway both refuse a gateway-signed document changed after signing."""
    document = tmp_path / "tampered.xml"
    document.write_bytes(_tamper(any_pki.signed("SG")))
    assert _xmlsec_verify(document, any_pki.directory / "SG" / "ca.pem").returncode != 0
    with pytest.raises(DigestMismatch):
        verify(parse(document.read_bytes()), any_pki.trust(), now=any_pki.created)


@needs_xmlsec1
def test_both_refuse_a_changed_signature_value(any_pki: PkiBundle, tmp_path: Path) -> None:
    """A changed byte in SignatureValue: refused by xmlsec1 and by the gateway."""
    root = parse(any_pki.signed("SG"))
    value = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    assert value is not None and value.text
    value.text = ("B" if value.text[5] == "A" else "A").join((value.text[:5], value.text[6:]))
    document = tmp_path / "changed-value.xml"
    document.write_bytes(etree.tostring(root))
    assert _xmlsec_verify(document, any_pki.directory / "SG" / "ca.pem").returncode != 0
    with pytest.raises(SignatureInvalid):
        verify(parse(document.read_bytes()), any_pki.trust(), now=any_pki.created)


@needs_xmlsec1
def test_text_after_the_signature_stays_signed(rsa_pki: PkiBundle, tmp_path: Path) -> None:
    """Whitespace added after the signature is in the signed content: both refuse it."""
    root = parse(rsa_pki.signed("SG"))
    root[-1].tail = "\n"  # set after signing: the digest covered no text there
    document = tmp_path / "tail.xml"
    document.write_bytes(etree.tostring(root))
    assert _xmlsec_verify(document, rsa_pki.directory / "SG" / "ca.pem").returncode != 0
    with pytest.raises(DigestMismatch):
        verify(parse(document.read_bytes()), rsa_pki.trust(), now=rsa_pki.created)


def _xmlsec_signed(bundle: PkiBundle, tmp_path: Path, template: str = TEMPLATE) -> bytes:
    assert XMLSEC1 is not None
    root = parse(bundle.sample())
    root.append(etree.fromstring(template.format(method=METHODS[bundle.key_type.value])))
    unsigned = tmp_path / "template.xml"
    unsigned.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    out = tmp_path / "xmlsec-signed.xml"
    sg = bundle.directory / "SG"
    result = _run(
        XMLSEC1,
        "--sign",
        "--privkey-pem",
        f"{sg / 'signer.key'},{sg / 'signer.pem'}",
        "--output",
        out,
        unsigned,
    )
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


@needs_xmlsec1
def test_xmlsec1_signature_is_accepted(any_pki: PkiBundle, tmp_path: Path) -> None:
    """A document signed by xmlsec1 with SG's signer is accepted by the gateway for SG."""
    verified = verify(
        parse(_xmlsec_signed(any_pki, tmp_path)), any_pki.trust(), now=datetime.now(UTC)
    )
    assert verified.signer.country == "SG"


@needs_xmlsec1
def test_xmlsec1_signature_with_a_prefix_list_is_accepted(
    any_pki: PkiBundle, tmp_path: Path
) -> None:
    """An xmlsec1 signature whose exclusive C14N carries InclusiveNamespaces is accepted."""
    data = _xmlsec_signed(any_pki, tmp_path, TEMPLATE_WITH_PREFIXES)
    assert data.count(b"PrefixList=") == 2
    verified = verify(parse(data), any_pki.trust(), now=datetime.now(UTC))
    assert verified.signer.country == "SG"
    with pytest.raises(DigestMismatch):
        verify(parse(_tamper(data)), any_pki.trust(), now=datetime.now(UTC))


@needs_xmlsec1
def test_tampered_xmlsec1_signature_is_refused(any_pki: PkiBundle, tmp_path: Path) -> None:
    """The gateway refuses an xmlsec1-signed document changed after signing."""
    tampered = _tamper(_xmlsec_signed(any_pki, tmp_path))
    with pytest.raises(DigestMismatch):
        verify(parse(tampered), any_pki.trust(), now=datetime.now(UTC))


def _openssl_verify(bundle: PkiBundle, cert: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    sg = bundle.directory / "SG"
    return _run(
        OPENSSL, "verify", "-crl_check", "-CAfile", sg / "ca.pem", "-CRLfile", sg / "crl.pem", cert
    )


@needs_openssl
@pytest.mark.parametrize("name", ["SG/signer.pem", "SG/gateway.pem"])
def test_openssl_accepts_good_certificates(rsa_pki: PkiBundle, name: str) -> None:
    """openssl verify -crl_check accepts SG's signer and gateway certificates."""
    result = _openssl_verify(rsa_pki, rsa_pki.directory / name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_openssl
def test_openssl_accepts_every_country(rsa_pki: PkiBundle) -> None:
    """Every country's signer verifies against its own CA and CRL."""
    assert OPENSSL is not None
    for country in rsa_pki.pki.countries:
        base = rsa_pki.directory / country
        result = _run(
            OPENSSL, "verify", "-crl_check", "-CAfile", base / "ca.pem",
            "-CRLfile", base / "crl.pem", base / "signer.pem",
        )  # fmt: skip
        assert result.returncode == 0, f"{country}: {result.stdout}{result.stderr}"


@needs_openssl
@pytest.mark.parametrize(
    ("name", "reason"),
    [("revoked", "revoked"), ("expired", "expired"), ("not-yet-valid", "not yet valid")],
)
def test_openssl_rejects_bad_certificates(rsa_pki: PkiBundle, name: str, reason: str) -> None:
    """openssl verify -crl_check rejects the revoked, expired and not-yet-valid certificates."""
    result = _openssl_verify(rsa_pki, rsa_pki.directory / "bad" / f"{name}.pem")
    assert result.returncode != 0
    assert reason in (result.stdout + result.stderr).lower()
