"""The ``DIR/<CC>/`` layout of a PKI on disk: writing a development PKI, reading keys back.

``DIR`` is a trust directory: it holds certificates and CRLs, plus the keys of the gateway's own
signers (``signer.key``, ``gateway.key``, ``tls.key``). The CAs' private keys never go there:
they are written to a separate directory (by default the sibling ``<DIR>-ca-keys/``, mode 0700),
so that a trust directory can be shared or mounted without the power to issue certificates.
Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.core.pki import DevPki, Issued
from gateway.core.signatures import SigningKey, load_signing_key

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


def read_signing_key(directory: Path, country: str, role: str = "signer") -> SigningKey:
    """``DIR/<CC>/<role>.key`` with its certificate ``<role>.pem`` (role: signer or gateway).

    Raises ``OSError`` when a file is missing or unreadable, ``SettingsError`` when it is not a
    usable key and certificate.
    """
    folder = directory / country
    return load_signing_key(
        (folder / f"{role}.key").read_bytes(), (folder / f"{role}.pem").read_bytes()
    )
