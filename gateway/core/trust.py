"""Per-country trust: which CAs vouch for a member state's signers, and who is revoked.

A ``TrustStore`` is built from data (PEM bytes); reading files and noticing that a CRL changed is
the shell's job (``gateway.trust_loader``). Deciding whether a certificate chain is trusted is
costly (chain building, one signature check per link, CRL look-ups), so each country keeps the
decision per chain of certificate fingerprints. A country's trust data never changes in place:
a new CRL makes a new ``CountryTrust`` (with its own ``version`` and an empty cache). Only the
parts that depend on the clock (validity periods, CRL freshness) are checked on every call.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.errors import (
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    CertificateUsage,
    RevocationUnknown,
    SenderMismatch,
    SignatureProblem,
)

MAX_CHAIN_LENGTH = 5
MAX_CACHED_DECISIONS = 4096
_SHA256 = hashes.SHA256()


class RevocationPolicy(enum.Enum):
    """What to do when no current CRL covers a certificate."""

    HARD_FAIL = "hard-fail"  # refuse with revocation-unknown
    SOFT_FAIL = "soft-fail"  # accept, with a warning on the message


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """Who signed: enough for a log line, a journal row and an operator."""

    subject: str
    country: str
    fingerprint: str  # SHA-256 of the signing certificate's DER, lower-case hex
    chain: tuple[str, ...]  # subjects, signing certificate first, trust anchor last


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedChain:
    """A signer accepted at ``now``, with the warnings its country's policy produced."""

    signer: Signer
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Expiry:
    """A CA certificate or CRL that runs out within the reporting window (or already has)."""

    country: str
    kind: str  # "ca" | "crl"
    name: str
    expires: datetime

    def describe(self, now: datetime) -> str:
        """One line for the operator."""
        verb = "expired" if self.expires <= now else "expires"
        return f"{self.country} {self.kind} {self.name}: {verb} {self.expires.isoformat()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Window:
    subject: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class _Freshness:
    """The CRL that covers one certificate of a chain (``None`` fields: no CRL at all)."""

    subject: str
    this_update: datetime | None
    next_update: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Decision:
    """What was decided once per chain: everything except what depends on the clock."""

    signer: Signer
    windows: tuple[_Window, ...]
    freshness: tuple[_Freshness, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Refusal:
    error: type[SignatureProblem]
    detail: str


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate, lower-case hex."""
    return cert.fingerprint(_SHA256).hex()


def country_of(cert: x509.Certificate) -> str | None:
    """The ISO country in the certificate's subject ``C`` attribute, if any."""
    values = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    usage = _key_usage(cert)
    return constraints.ca and (usage is None or usage.key_cert_sign)


@dataclass(frozen=True, slots=True, kw_only=True)
class CountryTrust:
    """One member state's trust anchors (two during a rollover), CRLs and revocation policy."""

    country: str
    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    policy: RevocationPolicy = RevocationPolicy.HARD_FAIL
    _decisions: dict[tuple[x509.Certificate, ...], _Decision | _Refusal] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_pem(
        cls,
        country: str,
        *,
        anchors: Iterable[bytes],
        crls: Iterable[bytes] = (),
        policy: RevocationPolicy = RevocationPolicy.HARD_FAIL,
    ) -> CountryTrust:
        """Build from PEM data; each ``anchors`` item may hold several certificates.

        Raises ``ValueError`` (from cryptography) on data that is not PEM.
        """
        certs = tuple(cert for pem in anchors for cert in x509.load_pem_x509_certificates(pem))
        if not certs:
            raise ValueError(f"no CA certificate given for {country}")
        return cls(
            country=country,
            anchors=certs,
            crls=tuple(x509.load_pem_x509_crl(pem) for pem in crls),
            policy=policy,
        )

    @property
    def version(self) -> str:
        """Identifies the anchors, CRLs and policy that the cached decisions were made with."""
        digest = hashlib.sha256(self.policy.value.encode())
        for cert in self.anchors:
            digest.update(cert.fingerprint(_SHA256))
        for crl in self.crls:
            digest.update(crl.fingerprint(_SHA256))
        return digest.hexdigest()[:16]

    def crl_for(
        self, cert: x509.Certificate, issuer: x509.Certificate
    ) -> x509.CertificateRevocationList | None:
        """The newest CRL of ``issuer`` whose signature checks out, if any."""
        best: x509.CertificateRevocationList | None = None
        for crl in self.crls:
            if crl.issuer != cert.issuer or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            if best is None or crl.last_update_utc > best.last_update_utc:
                best = crl
        return best

    def build_chain(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate]
    ) -> tuple[x509.Certificate, ...] | None:
        """The path from ``leaf`` to one of this country's anchors, anchor last; or ``None``."""
        leaf_der = leaf.public_bytes(Encoding.DER)
        if any(anchor.public_bytes(Encoding.DER) == leaf_der for anchor in self.anchors):
            return (leaf,)
        path = [leaf]
        current = leaf
        for _ in range(MAX_CHAIN_LENGTH):
            for anchor in self.anchors:
                if anchor.subject == current.issuer and _issued_by(current, anchor):
                    return (*path, anchor)
            parent = next(
                (
                    c
                    for c in intermediates
                    if c.subject == current.issuer and c not in path and _issued_by(current, c)
                ),
                None,
            )
            if parent is None or not _is_ca(parent):
                return None
            path.append(parent)
            current = parent
        return None

    def decide(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate]
    ) -> _Decision | _Refusal | None:
        """Chain, key usage and revocation, once per chain; ``None`` when not our CA's."""
        # Certificates hash and compare by their DER bytes: the chain itself is the key, at a
        # sixth of the cost of taking SHA-256 fingerprints of it on every message.
        key = (leaf, *intermediates)
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        chain = self.build_chain(leaf, intermediates)
        if chain is None:
            return None
        decision = self._judge(chain)
        if len(self._decisions) >= MAX_CACHED_DECISIONS:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def _judge(self, chain: tuple[x509.Certificate, ...]) -> _Decision | _Refusal:
        leaf = chain[0]
        subject = leaf.subject.rfc4514_string()
        usage = _key_usage(leaf)
        if usage is None or not usage.digital_signature:
            return _Refusal(
                error=CertificateUsage,
                detail=f"The certificate {subject} does not allow digital signatures "
                "(key usage digitalSignature).",
            )
        leaf_country = country_of(leaf)
        if leaf_country != self.country:
            return _Refusal(
                error=SenderMismatch,
                detail=f"The certificate {subject} names country {leaf_country!r} but was "
                f"issued by a CA of {self.country}.",
            )
        freshness: list[_Freshness] = []
        for cert, issuer in itertools.pairwise(chain):
            crl = self.crl_for(cert, issuer)
            cert_subject = cert.subject.rfc4514_string()
            if crl is None:
                freshness.append(
                    _Freshness(subject=cert_subject, this_update=None, next_update=None)
                )
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                return _Refusal(
                    error=CertificateRevoked,
                    detail=f"The certificate {cert_subject} (serial {cert.serial_number:x}) was "
                    f"revoked on {entry.revocation_date_utc.isoformat()}.",
                )
            freshness.append(
                _Freshness(
                    subject=cert_subject,
                    this_update=crl.last_update_utc,
                    next_update=crl.next_update_utc,
                )
            )
        return _Decision(
            signer=Signer(
                subject=subject,
                country=self.country,
                fingerprint=fingerprint(leaf),
                chain=tuple(c.subject.rfc4514_string() for c in chain),
            ),
            windows=tuple(
                _Window(
                    subject=c.subject.rfc4514_string(),
                    not_before=c.not_valid_before_utc,
                    not_after=c.not_valid_after_utc,
                )
                for c in chain
            ),
            freshness=tuple(freshness),
        )

    def expiring(self, *, now: datetime, within: timedelta) -> tuple[Expiry, ...]:
        """CA certificates and CRLs of this country that run out before ``now + within``."""
        horizon = now + within
        found = [
            Expiry(
                country=self.country,
                kind="ca",
                name=cert.subject.rfc4514_string(),
                expires=cert.not_valid_after_utc,
            )
            for cert in self.anchors
            if cert.not_valid_after_utc <= horizon
        ]
        found.extend(
            Expiry(
                country=self.country,
                kind="crl",
                name=crl.issuer.rfc4514_string(),
                expires=crl.next_update_utc,
            )
            for crl in self.crls
            if crl.next_update_utc is not None and crl.next_update_utc <= horizon
        )
        return tuple(found)


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Every member state's trust, by ISO country code."""

    countries: Mapping[str, CountryTrust]

    def __init__(self, countries: Mapping[str, CountryTrust] | Iterable[CountryTrust]) -> None:
        items = countries.values() if isinstance(countries, Mapping) else countries
        object.__setattr__(self, "countries", MappingProxyType({ct.country: ct for ct in items}))

    def replace_country(self, country: CountryTrust) -> TrustStore:
        """A store with ``country``'s trust swapped in; the other countries keep their caches."""
        return TrustStore({**self.countries, country.country: country})

    def check_signer(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        sender: str,
        now: datetime,
    ) -> TrustedChain:
        """Accept ``leaf`` as a signer for ``sender`` at ``now``, or raise why not.

        Raises ``CertificateUntrusted``, ``SenderMismatch``, ``CertificateUsage``,
        ``CertificateRevoked``, ``CertificateExpired`` or ``RevocationUnknown``.
        """
        home = self.countries.get(sender)
        decision = home.decide(leaf, intermediates) if home is not None else None
        if decision is None:
            raise self._not_from(sender, leaf, intermediates)
        if isinstance(decision, _Refusal):
            raise decision.error(decision.detail)
        for window in decision.windows:
            if now < window.not_before:
                raise CertificateExpired(
                    f"The certificate {window.subject} is not valid before "
                    f"{window.not_before.isoformat()} (checked at {now.isoformat()})."
                )
            if now > window.not_after:
                raise CertificateExpired(
                    f"The certificate {window.subject} expired on "
                    f"{window.not_after.isoformat()} (checked at {now.isoformat()})."
                )
        assert home is not None  # noqa: S101  (a decision comes only from a configured country)
        warnings = []
        for fresh in decision.freshness:
            problem = _stale(fresh, now)
            if problem is None:
                continue
            if home.policy is RevocationPolicy.HARD_FAIL:
                raise RevocationUnknown(problem)
            warnings.append(f"revocation-unknown: {problem} (soft-fail policy of {sender})")
        return TrustedChain(signer=decision.signer, warnings=tuple(warnings))

    def _not_from(
        self, sender: str, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate]
    ) -> SignatureProblem:
        subject = leaf.subject.rfc4514_string()
        for other in self.countries.values():
            if other.country != sender and other.build_chain(leaf, intermediates) is not None:
                return SenderMismatch(
                    f"The document says it comes from {sender}, but it is signed by "
                    f"{subject}, a certificate of {other.country}."
                )
        if sender not in self.countries:
            return CertificateUntrusted(
                f"No trust anchors are configured for the sender country {sender}."
            )
        return CertificateUntrusted(
            f"The certificate {subject} does not chain to a CA of {sender}."
        )

    def expiring(self, *, now: datetime, within: timedelta) -> tuple[Expiry, ...]:
        """Every CA certificate and CRL that runs out before ``now + within``, soonest first."""
        found = [e for ct in self.countries.values() for e in ct.expiring(now=now, within=within)]
        return tuple(sorted(found, key=lambda e: (e.expires, e.country, e.kind)))


def _stale(fresh: _Freshness, now: datetime) -> str | None:
    if fresh.next_update is None and fresh.this_update is None:
        return f"no CRL covers {fresh.subject}"
    if fresh.this_update is not None and fresh.this_update > now:
        return f"the CRL covering {fresh.subject} is not yet valid"
    if fresh.next_update is not None and fresh.next_update < now:
        return (
            f"the CRL covering {fresh.subject} is out of date "
            f"(next update was due {fresh.next_update.isoformat()})"
        )
    return None
