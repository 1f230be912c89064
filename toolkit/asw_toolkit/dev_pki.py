"""A development PKI for the ten member states, built in memory as PEM bytes.

For development and tests only: the keys are generated on the spot and never leave the machine
they were made on. Each country gets a root CA, a document signer (the issuing authority's
signing certificate), a gateway certificate (the gateway's own document signer, for receipts),
a TLS certificate (serverAuth and clientAuth, never document signing), plus the CA's CRL.
Document signers carry the extended key usage id-kp-documentSigning (RFC 9336), which the trust
store requires of every signer. The ``bad`` set holds one certificate per refusal the verifier
must make.

The country of a certificate is its subject ``C`` attribute; the organisation says which
authority holds it, e.g. ``O=SG Issuing Authority (DEV)``. ``write_dev_pki`` at the end writes
the files; nothing else here touches the disk, and nothing reads the clock.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.envelope import MEMBER_STATES
from gateway.core.trust import DOCUMENT_SIGNING

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=730)
CRL_LIFETIME = timedelta(days=30)
BACKDATE = timedelta(hours=1)

# The country whose CA issues most of the bad certificates, and the one that lends its
# signer to "sign as another country".
BAD_HOME = "SG"
BAD_FOREIGN = "MY"


class KeyType(enum.Enum):
    """Key algorithms the development PKI can generate."""

    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    P256 = "p256"


@dataclass(frozen=True, slots=True, kw_only=True)
class Issued:
    """A certificate and its private key, both PEM (the key unencrypted PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CountryPki:
    """One member state's development PKI."""

    country: str
    ca: Issued
    signer: Issued
    gateway: Issued  # the gateway's document signer: receipts
    tls: Issued  # the gateway's TLS certificate: serverAuth, clientAuth
    crl_pem: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DevPki:
    """Every country's PKI plus the deliberately bad certificates (by file stem)."""

    countries: Mapping[str, CountryPki]
    bad: Mapping[str, Issued]
    unknown_ca_pem: bytes


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key of the given type."""
    if key_type is KeyType.P256:
        return ec.generate_private_key(ec.SECP256R1())
    bits = 3072 if key_type is KeyType.RSA3072 else 2048
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(country: str, organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Authority:
    cert: x509.Certificate
    key: PrivateKey


def _root_ca(country: str, key_type: KeyType, now: datetime, *, label: str) -> _Authority:
    key = generate_key(key_type)
    name = _name(country, f"{country} {label} (DEV)", f"{country} Root CA (DEV)")
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(cert=cert, key=key)


def _leaf(
    issuer: _Authority,
    subject: x509.Name,
    key_type: KeyType,
    *,
    not_before: datetime,
    not_after: datetime,
    usage: x509.KeyUsage,
    extra: Sequence[x509.ExtensionType] = (),
) -> tuple[x509.Certificate, Issued]:
    key = generate_key(key_type)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    return cert, Issued(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def _signer_usage() -> x509.KeyUsage:
    return _key_usage(digital_signature=True, content_commitment=True)


def document_signing(*extra: x509.ObjectIdentifier) -> x509.ExtendedKeyUsage:
    """The extended key usage of a document signer (plus ``extra`` purposes)."""
    return x509.ExtendedKeyUsage([DOCUMENT_SIGNING, *extra])


def _crl(issuer: _Authority, revoked: Sequence[x509.Certificate], now: datetime) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + CRL_LIFETIME)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - BACKDATE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    crl = builder.sign(issuer.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def build_country(
    country: str,
    key_type: KeyType,
    now: datetime,
    *,
    revoke: Sequence[x509.Certificate] = (),
    authority: _Authority | None = None,
) -> CountryPki:
    """One country's CA, signer, gateway and TLS certificates and CRL (listing ``revoke``)."""
    ca = authority or _root_ca(country, key_type, now, label="Issuing Authority")
    until = now + LEAF_LIFETIME
    _, signer = _leaf(
        ca,
        _name(country, f"{country} Issuing Authority (DEV)", f"{country} Document Signer (DEV)"),
        key_type,
        not_before=now - BACKDATE,
        not_after=until,
        usage=_signer_usage(),
        extra=(document_signing(),),
    )
    host = f"gateway.{country.lower()}.asw.test"
    _, gateway = _leaf(
        ca,
        _name(country, f"{country} ASW Gateway (DEV)", f"{country} ASW Gateway Receipts (DEV)"),
        key_type,
        not_before=now - BACKDATE,
        not_after=until,
        usage=_signer_usage(),
        extra=(document_signing(),),
    )
    _, tls = _leaf(
        ca,
        _name(country, f"{country} ASW Gateway (DEV)", host),
        key_type,
        not_before=now - BACKDATE,
        not_after=until,
        usage=_key_usage(digital_signature=True, key_encipherment=key_type is not KeyType.P256),
        extra=(
            x509.SubjectAlternativeName([x509.DNSName(host)]),
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
        ),
    )
    return CountryPki(
        country=country,
        ca=Issued(cert_pem=_cert_pem(ca.cert), key_pem=_key_pem(ca.key)),
        signer=signer,
        gateway=gateway,
        tls=tls,
        crl_pem=_crl(ca, revoke, now),
    )


def build_dev_pki(
    *, now: datetime, key_type: KeyType = KeyType.RSA2048, countries: Sequence[str] = MEMBER_STATES
) -> DevPki:
    """The whole development PKI: every country, and the bad certificates under ``bad``.

    The bad certificates pretend to be documents signers of ``SG`` (``BAD_HOME``), except
    ``wrong-country``, a genuine ``MY`` signer meant to sign a document whose sender is SG.
    """
    if BAD_HOME not in countries or BAD_FOREIGN not in countries:
        raise ValueError(f"the development PKI needs at least {BAD_HOME} and {BAD_FOREIGN}")
    home_ca = _root_ca(BAD_HOME, key_type, now, label="Issuing Authority")
    bad: dict[str, Issued] = {}

    def bad_subject(label: str) -> x509.Name:
        return _name(BAD_HOME, f"{BAD_HOME} Issuing Authority (DEV)", f"{BAD_HOME} {label} (DEV)")

    _, bad["expired"] = _leaf(
        home_ca,
        bad_subject("Expired Signer"),
        key_type,
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=35),
        usage=_signer_usage(),
        extra=(document_signing(),),
    )
    _, bad["not-yet-valid"] = _leaf(
        home_ca,
        bad_subject("Future Signer"),
        key_type,
        not_before=now + timedelta(days=30),
        not_after=now + LEAF_LIFETIME,
        usage=_signer_usage(),
        extra=(document_signing(),),
    )
    revoked_cert, bad["revoked"] = _leaf(
        home_ca,
        bad_subject("Revoked Signer"),
        key_type,
        not_before=now - BACKDATE,
        not_after=now + LEAF_LIFETIME,
        usage=_signer_usage(),
        # clientAuth too, so that revocation is also exercised for a TLS client certificate
        extra=(document_signing(ExtendedKeyUsageOID.CLIENT_AUTH),),
    )
    _, bad["wrong-usage"] = _leaf(
        home_ca,
        bad_subject("Encryption Only"),
        key_type,
        not_before=now - BACKDATE,
        not_after=now + LEAF_LIFETIME,
        usage=_key_usage(key_encipherment=True),
        extra=(document_signing(),),
    )
    rogue = _root_ca(BAD_HOME, key_type, now, label="Rogue Authority")
    _, bad["unknown-ca"] = _leaf(
        rogue,
        bad_subject("Signer of an Unknown CA"),
        key_type,
        not_before=now - BACKDATE,
        not_after=now + LEAF_LIFETIME,
        usage=_signer_usage(),
        extra=(document_signing(),),
    )
    built: dict[str, CountryPki] = {}
    for country in countries:
        if country == BAD_HOME:
            built[country] = build_country(
                country, key_type, now, revoke=(revoked_cert,), authority=home_ca
            )
        else:
            built[country] = build_country(country, key_type, now)
    bad["wrong-country"] = built[BAD_FOREIGN].signer
    return DevPki(countries=built, bad=bad, unknown_ca_pem=_cert_pem(rogue.cert))


# Writing a development PKI to disk, in the ``DIR/<CC>/`` layout that the gateway reads
# (``gateway.pki_files.read_signing_key``). The CAs' private keys never go into the trust
# directory: they are written to a separate one (by default the sibling ``<DIR>-ca-keys/``, mode
# 0700). Private keys are written with mode 0600 and never printed.

_KEY_MODE = 0o600
_CA_KEYS_MODE = 0o700


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        path.chmod(_KEY_MODE)
    else:
        path.write_bytes(data)


def _private_dir(path: Path) -> None:
    """Make ``path`` (and its parents) if missing; ``path`` itself gets mode 0700."""
    path.mkdir(mode=_CA_KEYS_MODE, parents=True, exist_ok=True)
    path.chmod(_CA_KEYS_MODE)  # mkdir's mode is masked by the umask and skipped if it exists


def _write_issued(directory: Path, stem: str, issued: Issued) -> None:
    _write(directory / f"{stem}.pem", issued.cert_pem)
    _write(directory / f"{stem}.key", issued.key_pem, secret=True)


def default_ca_keys_dir(directory: Path) -> Path:
    """Where ``write_dev_pki`` puts the CA keys of ``directory`` unless told: ``<DIR>-ca-keys``."""
    return directory.parent / f"{directory.name}-ca-keys"


def write_dev_pki(pki: DevPki, directory: Path, *, ca_keys: Path | None = None) -> list[Path]:
    """Write every file of ``pki``; returns the certificate files written.

    Certificates, CRLs and the leaf keys go under ``directory``; each country's CA key goes to
    ``ca_keys/<CC>/ca.key`` (default ``default_ca_keys_dir(directory)``), a directory of mode
    0700 outside the trust directory.
    """
    written: list[Path] = []
    ca_keys = ca_keys if ca_keys is not None else default_ca_keys_dir(directory)
    _private_dir(ca_keys)
    for country, parts in pki.countries.items():
        target = directory / country
        target.mkdir(parents=True, exist_ok=True)
        _write(target / "ca.pem", parts.ca.cert_pem)
        written.append(target / "ca.pem")
        key_folder = ca_keys / country
        _private_dir(key_folder)
        _write(key_folder / "ca.key", parts.ca.key_pem, secret=True)
        (target / "ca.key").unlink(missing_ok=True)  # left by an older layout
        issued_files = (("signer", parts.signer), ("gateway", parts.gateway), ("tls", parts.tls))
        for stem, issued in issued_files:
            _write_issued(target, stem, issued)
            written.append(target / f"{stem}.pem")
        _write(target / "crl.pem", parts.crl_pem)
        written.append(target / "crl.pem")
    bad = directory / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    for stem, issued in pki.bad.items():
        _write_issued(bad, stem, issued)
        written.append(bad / f"{stem}.pem")
    _write(bad / "unknown-ca-root.pem", pki.unknown_ca_pem)
    written.append(bad / "unknown-ca-root.pem")
    return written
