"""The development PKI: names, key usages, the CRL, and the bad certificates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asw_toolkit.dev_pki import default_ca_keys_dir
from gateway.core.envelope import MEMBER_STATES
from gateway.core.trust import DOCUMENT_SIGNING

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_every_member_state_has_its_pki(p256_pki: PkiBundle) -> None:
    """Each of the ten countries has a CA, signer, gateway and TLS certificate, named for it."""
    assert set(p256_pki.pki.countries) == set(MEMBER_STATES)
    for country, parts in p256_pki.pki.countries.items():
        pems = (
            parts.ca.cert_pem,
            parts.signer.cert_pem,
            parts.gateway.cert_pem,
            parts.tls.cert_pem,
        )
        for pem in pems:
            subject = _cert(pem).subject
            assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == country
            organisation = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
            assert isinstance(organisation, str)
            assert organisation.startswith(f"{country} ")
            assert organisation.endswith("(DEV)")


def test_signer_may_sign_and_ca_may_only_issue(p256_pki: PkiBundle) -> None:
    """The signer has digitalSignature and is no CA; the CA signs certificates and CRLs."""
    sg = p256_pki.pki.countries["SG"]
    signer_usage = _cert(sg.signer.cert_pem).extensions.get_extension_for_class(x509.KeyUsage)
    assert signer_usage.value.digital_signature
    ca = _cert(sg.ca.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign and not ca_usage.digital_signature


def test_revoked_certificate_is_on_its_ca_crl(p256_pki: PkiBundle) -> None:
    """bad/revoked is listed on SG's CRL and no good certificate is."""
    crl = x509.load_pem_x509_crl(p256_pki.pki.countries["SG"].crl_pem)
    revoked = _cert(p256_pki.pki.bad["revoked"].cert_pem)
    good = _cert(p256_pki.pki.countries["SG"].signer.cert_pem)
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(good.serial_number) is None


def test_bad_validity_periods_straddle_creation(p256_pki: PkiBundle) -> None:
    """bad/expired ended before the PKI was made; bad/not-yet-valid starts after."""
    expired = _cert(p256_pki.pki.bad["expired"].cert_pem)
    future = _cert(p256_pki.pki.bad["not-yet-valid"].cert_pem)
    assert expired.not_valid_after_utc < p256_pki.created < future.not_valid_before_utc


def test_private_keys_are_written_owner_only(rsa_pki: PkiBundle) -> None:
    """Every *.key file is mode 0600; no CA key lies in the trust directory."""
    keys = list(rsa_pki.directory.rglob("*.key"))
    assert len(keys) == 3 * len(MEMBER_STATES) + 6
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in keys)
    assert not list(rsa_pki.directory.rglob("ca*.key"))


def test_ca_keys_are_kept_outside_the_trust_directory(rsa_pki: PkiBundle) -> None:
    """Each CA key is in the sibling <DIR>-ca-keys/<CC>/ca.key, directories 0700, key 0600."""
    ca_keys = default_ca_keys_dir(rsa_pki.directory)
    assert ca_keys.stat().st_mode & 0o777 == 0o700
    for country, parts in rsa_pki.pki.countries.items():
        key = ca_keys / country / "ca.key"
        assert key.read_bytes() == parts.ca.key_pem
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.parent.stat().st_mode & 0o777 == 0o700


def test_signers_carry_document_signing_and_tls_certificates_do_not(p256_pki: PkiBundle) -> None:
    """Signer and gateway certificates have id-kp-documentSigning; the TLS one serverAuth."""
    for parts in p256_pki.pki.countries.values():
        for issued in (parts.signer, parts.gateway):
            purposes = _cert(issued.cert_pem).extensions.get_extension_for_class(
                x509.ExtendedKeyUsage
            )
            assert list(purposes.value) == [DOCUMENT_SIGNING]
        tls = _cert(parts.tls.cert_pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert ExtendedKeyUsageOID.SERVER_AUTH in tls.value
        assert DOCUMENT_SIGNING not in tls.value
