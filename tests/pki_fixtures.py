"""Session fixtures: a development PKI generated once per test run into a temporary directory.

Load with ``pytest_plugins = ["tests.pki_fixtures"]`` in a test module. The RSA-2048 PKI takes
about two seconds to generate; the P-256 one a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from asw_toolkit.dev_pki import DevPki, Issued, KeyType, build_dev_pki, write_dev_pki
from gateway.core.parsing import parse
from gateway.core.signatures import SigningKey, load_signing_key, sign
from gateway.core.trust import CountryTrust, RevocationPolicy, TrustStore

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "formd" / "valid" / "sg-th-basic.xml"


@dataclass(frozen=True, slots=True, kw_only=True)
class PkiBundle:
    """A generated PKI, where it was written, and when it was made."""

    pki: DevPki
    directory: Path
    created: datetime
    key_type: KeyType

    def trust(self, *, soft_fail: frozenset[str] = frozenset()) -> TrustStore:
        """A trust store with every country's CA and CRL."""
        return TrustStore(
            CountryTrust.from_pem(
                country,
                anchors=[parts.ca.cert_pem],
                crls=[parts.crl_pem],
                policy=RevocationPolicy.SOFT_FAIL
                if country in soft_fail
                else RevocationPolicy.HARD_FAIL,
            )
            for country, parts in self.pki.countries.items()
        )

    def issued(self, name: str) -> Issued:
        """``SG`` etc. for a country's document signer, or a ``bad`` certificate's name."""
        if name in self.pki.countries:
            return self.pki.countries[name].signer
        return self.pki.bad[name]

    def key(self, name: str, *, digest: str = "sha256") -> SigningKey:
        """The signing key of a country's signer or of a bad certificate."""
        issued = self.issued(name)
        return load_signing_key(issued.key_pem, issued.cert_pem, digest=digest)

    @staticmethod
    def sample() -> bytes:
        """The Form D sample sent by SG to TH."""
        return sample_bytes()

    def signed(self, name: str = "SG", data: bytes | None = None) -> bytes:
        """The sample (or ``data``) signed by ``name``, serialised."""
        signed = sign(parse(data if data is not None else sample_bytes()), self.key(name))
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def sample_bytes() -> bytes:
    """The Form D sample sent by SG to TH."""
    return SAMPLE.read_bytes()


def _bundle(tmp: Path, key_type: KeyType) -> PkiBundle:
    created = datetime.now(UTC).replace(microsecond=0)
    pki = build_dev_pki(now=created, key_type=key_type)
    write_dev_pki(pki, tmp)
    return PkiBundle(pki=pki, directory=tmp, created=created, key_type=key_type)


@pytest.fixture(scope="session")
def rsa_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiBundle:
    """The RSA-2048 development PKI, written under a session temporary directory."""
    return _bundle(tmp_path_factory.mktemp("pki-rsa"), KeyType.RSA2048)


@pytest.fixture(scope="session")
def p256_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiBundle:
    """The P-256 development PKI, written under a session temporary directory."""
    return _bundle(tmp_path_factory.mktemp("pki-p256"), KeyType.P256)


@pytest.fixture(scope="session", params=[KeyType.RSA2048, KeyType.P256], ids=lambda k: k.value)
def any_pki(request: pytest.FixtureRequest, rsa_pki: PkiBundle, p256_pki: PkiBundle) -> PkiBundle:
    """Each development PKI in turn."""
    return rsa_pki if request.param is KeyType.RSA2048 else p256_pki
