"""Per-country trust: which CAs vouch for a member state's signers, and who is revoked.

A ``TrustStore`` is built from data (PEM bytes); reading files and noticing that a CRL changed is
the shell's job (``gateway.trust_loader``). A signer is accepted after RFC 5280 path validation
by ``cryptography.x509.verification`` towards the sending country's CAs only, under the
gateway's document-signing profile:

- every certificate offered (signer and intermediates, in any order) has an RSA key of 2048 to
  8192 bits with public exponent 65537, or an EC key on P-256, P-384 or P-521; this is checked
  on the parsed keys before any signature is checked, so a huge exponent costs nothing;
- the signer is no CA, may make digital signatures (keyUsage digitalSignature or
  nonRepudiation), names the sending country in its subject ``C``, and carries the extended key
  usage id-kp-documentSigning (RFC 9336), which no TLS certificate carries;
- unknown critical extensions, basicConstraints and pathLenConstraint, validity and the
  signatures of the path are the library's (its Web PKI CA profile);
- revocation is read from the country's CRLs, hard- or soft-fail per country.

Deciding costs a path validation and CRL look-ups, so each country caches successful decisions
only, keyed by the certificates themselves (their DER), bounded in bytes. A country's trust data
never changes in place: a new CRL makes a new ``CountryTrust`` (with an empty cache). Only the
parts that depend on the clock (validity periods, CRL freshness) are checked again on every call.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.errors import (
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    CertificateUsage,
    KeyTooWeak,
    RevocationUnknown,
    SenderMismatch,
)

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336
MAX_CHAIN_DEPTH = 4  # intermediate CAs between the signer and the country's CA
MAX_OFFERED_CERTIFICATES = 8  # intermediates a signature may carry beside the signer
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # beyond this a single signature check costs too much to do for a stranger
RSA_EXPONENT = 65537
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MAX_CACHE_BYTES = 2 * 1024 * 1024  # per country: certificates' DER plus a fixed overhead each
_ENTRY_OVERHEAD = 1024  # bytes counted per cached certificate beyond its DER
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


class Profile(enum.Enum):
    """What a certificate is checked for: signing documents, or a TLS client (mTLS)."""

    DOCUMENT_SIGNING = "document-signing"
    TLS_CLIENT = "tls-client"


def subject_of(cert: x509.Certificate) -> str:
    """The subject of a certificate for messages (RFC 4514), or a stand-in if unreadable."""
    try:
        return cert.subject.rfc4514_string()
    except ValueError:  # a subject that cannot be rendered
        return "(unreadable subject)"


def check_key(cert: x509.Certificate) -> None:
    """Refuse a certificate whose key is outside the key policy; reads the key, checks nothing.

    RSA: 2048 to 8192 bits, exponent 65537. EC: P-256, P-384 or P-521. Raises ``KeyTooWeak``.
    Cheap (no signature is checked), so it runs on every offered certificate first.
    """
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as exc:  # an unsupported or malformed key
        raise KeyTooWeak(f"The key of the certificate {subject_of(cert)} cannot be read.") from exc
    if isinstance(key, rsa.RSAPublicKey):
        bits, exponent = key.key_size, key.public_numbers().e
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise KeyTooWeak(
                f"The certificate {subject_of(cert)} has an RSA key of {bits} bits; "
                f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits are accepted."
            )
        if exponent != RSA_EXPONENT:
            raise KeyTooWeak(
                f"The certificate {subject_of(cert)} has an RSA key with public exponent "
                f"of {exponent.bit_length()} bits; only {RSA_EXPONENT} is accepted."
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise KeyTooWeak(
                f"The certificate {subject_of(cert)} has an EC key on {key.curve.name}; "
                "P-256, P-384 or P-521 are accepted."
            )
        return
    raise KeyTooWeak(
        f"The certificate {subject_of(cert)} has a {type(key).__name__} key; RSA or EC keys are "
        "accepted."
    )


def check_keys(certs: Iterable[x509.Certificate]) -> None:
    """``check_key`` on each certificate: run before any signature check that uses them."""
    for cert in certs:
        check_key(cert)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _signing_usage(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not sign documents, or ``None``: the document-signing profile."""
    subject = subject_of(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        return (
            f"The certificate {subject} is a CA certificate (CA:TRUE); a CA may not sign documents."
        )
    usage = _extension(cert, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not (
        usage.digital_signature or usage.content_commitment
    ):
        return (
            f"The certificate {subject} does not allow digital signatures "
            "(key usage digitalSignature or nonRepudiation)."
        )
    purposes = _extension(cert, x509.ExtendedKeyUsage)
    if not isinstance(purposes, x509.ExtendedKeyUsage) or DOCUMENT_SIGNING not in purposes:
        return (
            f"The certificate {subject} is not a document-signing certificate (extended key "
            f"usage {DOCUMENT_SIGNING.dotted_string}); TLS certificates may not sign documents."
        )
    return None


def _require_document_signing(
    _policy: Policy, _cert: x509.Certificate, value: x509.ExtendedKeyUsage
) -> None:
    if DOCUMENT_SIGNING not in value:
        raise ValueError("extended key usage lacks id-kp-documentSigning")


def _require_signing_usage(_policy: Policy, _cert: x509.Certificate, value: x509.KeyUsage) -> None:
    if not (value.digital_signature or value.content_commitment):
        raise ValueError("key usage allows neither digitalSignature nor nonRepudiation")


# The Web PKI end-entity profile (no CA:TRUE, every critical extension understood, ...) with
# the document-signing purpose instead of a TLS one, and no subjectAltName needed.
_SIGNER_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_document_signing)
    .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_signing_usage)
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
)
_CLIENT_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cached:
    decision: _Decision
    size: int


class _DecisionCache:
    """Successful decisions by certificates (DER), oldest out first, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: dict[object, _Cached] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes accounted to the cached entries."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: object) -> _Decision | None:
        # One dict look-up, no lock (hashing a chain is most of the cost of a cache hit). Only
        # successes are stored, so oldest-first eviction drops genuine signers only.
        found = self._entries.get(key)
        return None if found is None else found.decision

    def put(self, key: object, decision: _Decision, certs: Sequence[x509.Certificate]) -> None:
        size = sum(len(c.tbs_certificate_bytes) + len(c.signature) for c in certs)
        size += _ENTRY_OVERHEAD * len(certs)
        if size > self._max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            while self._entries and self._bytes + size > self._max_bytes:
                evicted = self._entries.pop(next(iter(self._entries)))
                self._bytes -= evicted.size
            self._entries[key] = _Cached(decision=decision, size=size)
            self._bytes += size


@dataclass(frozen=True, slots=True, kw_only=True)
class CountryTrust:
    """One member state's trust anchors (two during a rollover), CRLs and revocation policy."""

    country: str
    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    policy: RevocationPolicy = RevocationPolicy.HARD_FAIL
    _cache: _DecisionCache = field(
        default_factory=lambda: _DecisionCache(MAX_CACHE_BYTES), compare=False, repr=False
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

    @property
    def cached_bytes(self) -> int:
        """Bytes held by this country's cache of successful decisions (for reports and tests)."""
        return self._cache.size

    def decide(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        now: datetime,
        profile: Profile = Profile.DOCUMENT_SIGNING,
    ) -> _Decision:
        """Path, profile and revocation of ``leaf`` towards this country's CAs, or raise why not.

        The order of ``intermediates`` does not matter. Only successful decisions are cached
        (keyed by the certificates themselves); the clock-dependent parts are the caller's.
        """
        key = (profile, leaf, frozenset(intermediates))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # Before any signature is checked: a huge RSA exponent or modulus costs nothing here.
        check_keys((leaf, *intermediates))
        if profile is Profile.DOCUMENT_SIGNING:
            problem = _signing_usage(leaf)
            if problem is not None:
                raise CertificateUsage(problem)
        leaf_country = country_of(leaf)
        if leaf_country != self.country:
            raise SenderMismatch(
                f"The document says it comes from {self.country}, but it is signed by "
                f"{subject_of(leaf)}, a certificate naming country {leaf_country!r}."
                if profile is Profile.DOCUMENT_SIGNING
                else f"The certificate {subject_of(leaf)} names country {leaf_country!r}, "
                f"not {self.country}."
            )
        _refuse_outside_validity(leaf, now)
        chain = self._validate(leaf, intermediates, now=now, profile=profile)
        decision = self._judge(chain)
        self._cache.put(key, decision, (leaf, *intermediates))
        return decision

    def _validate(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        now: datetime,
        profile: Profile,
    ) -> tuple[x509.Certificate, ...]:
        """RFC 5280 path validation by cryptography, towards this country's CAs only."""
        ee_policy = _SIGNER_POLICY if profile is Profile.DOCUMENT_SIGNING else _CLIENT_POLICY
        verifier = (
            PolicyBuilder()
            .store(Store(list(self.anchors)))
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, list(intermediates))
        except VerificationError as exc:
            expired = self._expired_issuer(leaf, intermediates, now)
            if expired is not None:
                raise expired from exc
            rules = "document-signing" if profile is Profile.DOCUMENT_SIGNING else "TLS client"
            raise CertificateUntrusted(
                f"The certificate {subject_of(leaf)} does not chain to a CA of {self.country} "
                f"under the {rules} rules ({_reason(exc)})."
            ) from exc
        return tuple(verified.chain)

    def _expired_issuer(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime,
    ) -> CertificateExpired | None:
        """After a refusal: an issuer on the way (by name) outside its validity, if any."""
        by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in (*intermediates, *self.anchors):
            by_subject.setdefault(cert.subject, []).append(cert)
        current, seen = leaf, {leaf}
        for _ in range(MAX_CHAIN_DEPTH + 1):
            issuers = [c for c in by_subject.get(current.issuer, ()) if c not in seen]
            if not issuers:
                return None
            if all(not _valid_at(c, now) for c in issuers):
                return _outside_validity(issuers[0], now)
            current = issuers[0]
            seen.add(current)
        return None

    def _judge(self, chain: tuple[x509.Certificate, ...]) -> _Decision:
        leaf = chain[0]
        subject = subject_of(leaf)
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
                raise CertificateRevoked(
                    f"The certificate {cert_subject} (serial {cert.serial_number:x}) was "
                    f"revoked on {entry.revocation_date_utc.isoformat()}."
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
        """Accept ``leaf`` as a document signer for ``sender`` at ``now``, or raise why not.

        ``intermediates`` are the other certificates the signature carries, in any order. Raises
        ``KeyTooWeak``, ``CertificateUntrusted``, ``SenderMismatch``, ``CertificateUsage``,
        ``CertificateRevoked``, ``CertificateExpired`` or ``RevocationUnknown``.
        """
        return self._check(
            leaf, intermediates, country=sender, now=now, profile=Profile.DOCUMENT_SIGNING
        )

    def check_client(
        self,
        cert: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        country: str,
        now: datetime,
    ) -> TrustedChain:
        """Accept a TLS client certificate as ``country``'s at ``now``, or raise why not.

        The same path validation, keys, validity and revocation as ``check_signer``, with the
        TLS client purpose (clientAuth, when an extended key usage is present) instead of the
        document-signing one.
        """
        return self._check(
            cert, intermediates, country=country, now=now, profile=Profile.TLS_CLIENT
        )

    def _check(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        country: str,
        now: datetime,
        profile: Profile,
    ) -> TrustedChain:
        home = self.countries.get(country)
        if home is None:
            raise CertificateUntrusted(
                f"No trust anchors are configured for the sender country {country}."
            )
        if len(intermediates) > MAX_OFFERED_CERTIFICATES:
            raise CertificateUntrusted(
                f"The signature carries {len(intermediates) + 1} certificates; at most "
                f"{MAX_OFFERED_CERTIFICATES + 1} are accepted."
            )
        decision = home.decide(leaf, intermediates, now=now, profile=profile)
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
        warnings = []
        for fresh in decision.freshness:
            problem = _stale(fresh, now)
            if problem is None:
                continue
            if home.policy is RevocationPolicy.HARD_FAIL:
                raise RevocationUnknown(problem)
            warnings.append(f"revocation-unknown: {problem} (soft-fail policy of {country})")
        return TrustedChain(signer=decision.signer, warnings=tuple(warnings))

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


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _outside_validity(cert: x509.Certificate, now: datetime) -> CertificateExpired:
    if now < cert.not_valid_before_utc:
        return CertificateExpired(
            f"The certificate {subject_of(cert)} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()} (checked at {now.isoformat()})."
        )
    return CertificateExpired(
        f"The certificate {subject_of(cert)} expired on "
        f"{cert.not_valid_after_utc.isoformat()} (checked at {now.isoformat()})."
    )


def _refuse_outside_validity(cert: x509.Certificate, now: datetime) -> None:
    if not _valid_at(cert, now):
        raise _outside_validity(cert, now)


def _reason(exc: VerificationError) -> str:
    """The library's reason, without the certificate dump it appends."""
    text = str(exc).removeprefix("validation failed: ")
    text = text.split(" (encountered processing", 1)[0]
    if text.endswith("all candidates exhausted with no interior errors"):
        return "none of the country's CAs issued it"
    return text.removeprefix("candidates exhausted: ")
