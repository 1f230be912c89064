"""Per-country trust: chains, sender country, key usage, revocation policy, expiry, reloading."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from asw_toolkit.dev_pki import KeyType, build_country
from gateway.core.trust import CountryTrust, RevocationPolicy, TrustStore
from gateway.errors import (
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    CertificateUsage,
    RevocationUnknown,
    SenderMismatch,
    SettingsError,
    SignatureProblem,
)
from gateway.trust_loader import ReloadingTrustStore, load_trust_store

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _check(store: TrustStore, bundle: PkiBundle, name: str, *, sender: str = "SG") -> object:
    return store.check_signer(
        _cert(bundle.issued(name).cert_pem), (), sender=sender, now=bundle.created
    )


def test_country_signer_is_trusted_for_its_country(p256_pki: PkiBundle) -> None:
    """SG's signer is accepted for sender SG, with its chain up to SG's root."""
    trusted = p256_pki.trust().check_signer(
        _cert(p256_pki.issued("SG").cert_pem), (), sender="SG", now=p256_pki.created
    )
    assert trusted.signer.country == "SG"
    assert len(trusted.signer.chain) == 2
    assert trusted.warnings == ()


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("expired", CertificateExpired),
        ("not-yet-valid", CertificateExpired),
        ("revoked", CertificateRevoked),
        ("wrong-usage", CertificateUsage),
        ("unknown-ca", CertificateUntrusted),
        ("wrong-country", SenderMismatch),
    ],
)
def test_bad_certificates_are_refused_with_their_code(
    p256_pki: PkiBundle, name: str, error: type[SignatureProblem]
) -> None:
    """Each certificate under bad/ is refused with its own error class."""
    with pytest.raises(error):
        _check(p256_pki.trust(), p256_pki, name)


def test_refusal_is_raised_fresh_and_never_cached(p256_pki: PkiBundle) -> None:
    """A refusal raises a new exception every time and leaves nothing in the cache."""
    store = p256_pki.trust()
    raised = []
    for _ in range(2):
        with pytest.raises(CertificateRevoked) as info:
            _check(store, p256_pki, "revoked")
        raised.append(info.value)
    assert raised[0] is not raised[1]
    assert store.countries["SG"].cached_bytes == 0


def test_decisions_are_cached_per_certificate(p256_pki: PkiBundle) -> None:
    """The path is validated once per certificate; a re-parsed copy reuses the decision."""
    store = p256_pki.trust()
    pem = p256_pki.issued("SG").cert_pem
    country = store.countries["SG"]
    first = country.decide(_cert(pem), (), now=p256_pki.created)
    assert country.cached_bytes > 0
    assert country.decide(_cert(pem), (), now=p256_pki.created) is first


def test_cache_is_bounded_in_bytes(p256_pki: PkiBundle) -> None:
    """Many accepted chains never hold more than the country's byte budget."""
    sg = p256_pki.pki.countries["SG"]
    country = CountryTrust(
        country="SG",
        anchors=(_cert(sg.ca.cert_pem),),
        crls=(x509.load_pem_x509_crl(sg.crl_pem),),
    )
    object.__setattr__(country, "_cache", type(country._cache)(6000))
    leaf = _cert(sg.signer.cert_pem)
    others = [_cert(p256_pki.pki.countries[c].signer.cert_pem) for c in ("MY", "TH", "VN")]
    for extra in ((), *[(o,) for o in others]):
        country.decide(leaf, extra, now=p256_pki.created)
        assert 0 < country.cached_bytes <= 6000
    assert len(country._cache) < 4


def test_signer_of_another_country_is_a_sender_mismatch(p256_pki: PkiBundle) -> None:
    """TH's signer on a document from SG is sender-mismatch, naming TH."""
    with pytest.raises(SenderMismatch, match="TH"):
        _check(p256_pki.trust(), p256_pki, "TH", sender="SG")


def test_country_attribute_must_match_the_issuing_country(p256_pki: PkiBundle) -> None:
    """A certificate issued by SG's CA but naming C=MY is not a signer for SG."""
    sg = p256_pki.pki.countries["SG"]
    ca_key = serialization.load_pem_private_key(sg.ca.key_pem, password=None)
    ca = _cert(sg.ca.cert_pem)
    genuine = _cert(sg.signer.cert_pem)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "MY")]))
        .issuer_name(ca.subject)
        .public_key(genuine.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
        .add_extension(genuine.extensions.get_extension_for_class(x509.KeyUsage).value, True)
        .add_extension(
            genuine.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value, False
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    with pytest.raises(SenderMismatch):
        p256_pki.trust().check_signer(forged, (), sender="SG", now=p256_pki.created)


def test_unconfigured_sender_is_untrusted(p256_pki: PkiBundle) -> None:
    """A sender country without trust anchors gives certificate-untrusted."""
    store = TrustStore([c for c in p256_pki.trust().countries.values() if c.country != "SG"])
    with pytest.raises(CertificateUntrusted, match="No trust anchors"):
        _check(store, p256_pki, "SG")


def _without_crl(bundle: PkiBundle, policy: RevocationPolicy) -> TrustStore:
    sg = bundle.pki.countries["SG"]
    return bundle.trust().replace_country(
        CountryTrust.from_pem("SG", anchors=[sg.ca.cert_pem], policy=policy)
    )


def test_missing_crl_under_hard_fail_is_revocation_unknown(p256_pki: PkiBundle) -> None:
    """Hard-fail: no CRL for the signer's CA means refuse."""
    with pytest.raises(RevocationUnknown):
        _check(_without_crl(p256_pki, RevocationPolicy.HARD_FAIL), p256_pki, "SG")


def test_missing_crl_under_soft_fail_is_a_warning(p256_pki: PkiBundle) -> None:
    """Soft-fail: no CRL means accept, with a revocation-unknown warning."""
    store = _without_crl(p256_pki, RevocationPolicy.SOFT_FAIL)
    trusted = store.check_signer(
        _cert(p256_pki.issued("SG").cert_pem), (), sender="SG", now=p256_pki.created
    )
    assert len(trusted.warnings) == 1
    assert trusted.warnings[0].startswith("revocation-unknown")


def test_stale_crl_under_hard_fail_is_revocation_unknown(p256_pki: PkiBundle) -> None:
    """A CRL past its next update no longer counts as current."""
    store = p256_pki.trust()
    leaf = _cert(p256_pki.issued("SG").cert_pem)
    with pytest.raises(RevocationUnknown, match="out of date"):
        store.check_signer(leaf, (), sender="SG", now=p256_pki.created + timedelta(days=45))


def test_rollover_accepts_signers_of_old_and_new_ca(p256_pki: PkiBundle) -> None:
    """With two CA certificates for one country, signers under either are accepted."""
    old = p256_pki.pki.countries["SG"]
    new = build_country("SG", KeyType.P256, p256_pki.created)
    store = p256_pki.trust().replace_country(
        CountryTrust.from_pem(
            "SG", anchors=[old.ca.cert_pem, new.ca.cert_pem], crls=[old.crl_pem, new.crl_pem]
        )
    )
    for signer in (old.signer, new.signer):
        trusted = store.check_signer(_cert(signer.cert_pem), (), sender="SG", now=p256_pki.created)
        assert trusted.signer.country == "SG"


def test_expiry_report_lists_crls_inside_the_window(p256_pki: PkiBundle) -> None:
    """CRLs valid for 30 days are reported with a 31-day window and not with a 29-day one."""
    store = p256_pki.trust()
    soon = store.expiring(now=p256_pki.created, within=timedelta(days=31))
    assert {e.country for e in soon if e.kind == "crl"} == set(p256_pki.pki.countries)
    assert store.expiring(now=p256_pki.created, within=timedelta(days=29)) == ()


def test_loader_reads_every_country_and_ignores_bad(rsa_pki: PkiBundle) -> None:
    """load_trust_store() reads DIR/<CC>/ca.pem and crl.pem; DIR/bad/ is not a country."""
    store = load_trust_store(rsa_pki.directory, policies={"TH": "soft-fail"})
    assert set(store.countries) == set(rsa_pki.pki.countries)
    assert store.countries["TH"].policy is RevocationPolicy.SOFT_FAIL
    assert store.countries["SG"].policy is RevocationPolicy.HARD_FAIL


def test_loader_refuses_an_unknown_policy(rsa_pki: PkiBundle) -> None:
    """A policy other than hard-fail / soft-fail is a settings error."""
    with pytest.raises(SettingsError):
        load_trust_store(rsa_pki.directory, policies={"SG": "maybe"})


def test_reloading_store_picks_up_a_changed_crl(p256_pki: PkiBundle, tmp_path: Path) -> None:
    """A new crl.pem (new mtime) is read on the next check; other countries keep their cache."""
    sg_dir = tmp_path / "SG"
    my_dir = tmp_path / "MY"
    for country, target in (("SG", sg_dir), ("MY", my_dir)):
        target.mkdir()
        parts = p256_pki.pki.countries[country]
        (target / "ca.pem").write_bytes(parts.ca.cert_pem)
        (target / "crl.pem").write_bytes(parts.crl_pem)
    ticks = [0.0]
    reloading = ReloadingTrustStore(tmp_path, check_every=10.0, clock=lambda: ticks[0])
    before = reloading.current()
    (sg_dir / "crl.pem").unlink()
    os.utime(sg_dir, None)
    assert reloading.current() is before  # inside the check interval nothing is looked at
    ticks[0] = 11.0
    after = reloading.current()
    assert after is not before
    assert after.countries["MY"] is before.countries["MY"]
    with pytest.raises(RevocationUnknown):
        _check(after, p256_pki, "SG")


def test_tls_certificate_is_a_client_but_no_signer(p256_pki: PkiBundle) -> None:
    """SG's TLS certificate passes the TLS client profile and fails the document-signing one."""
    store = p256_pki.trust()
    tls = _cert(p256_pki.pki.countries["SG"].tls.cert_pem)
    trusted = store.check_client(tls, (), country="SG", now=p256_pki.created)
    assert trusted.signer.country == "SG"
    with pytest.raises(CertificateUsage, match="document-signing"):
        store.check_signer(tls, (), sender="SG", now=p256_pki.created)


def test_document_signer_is_no_tls_client(p256_pki: PkiBundle) -> None:
    """SG's document signer (no clientAuth) is refused as a TLS client certificate."""
    signer = _cert(p256_pki.issued("SG").cert_pem)
    with pytest.raises(CertificateUntrusted, match="TLS client"):
        p256_pki.trust().check_client(signer, (), country="SG", now=p256_pki.created)
