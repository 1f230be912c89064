"""The ``DIR/<CC>/`` layout of a PKI on disk: writing a development PKI, reading keys back.

Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.core.pki import DevPki, Issued
from gateway.core.signatures import SigningKey, load_signing_key

_KEY_MODE = 0o600


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        path.chmod(_KEY_MODE)
    else:
        path.write_bytes(data)


def _write_issued(directory: Path, stem: str, issued: Issued) -> None:
    _write(directory / f"{stem}.pem", issued.cert_pem)
    _write(directory / f"{stem}.key", issued.key_pem, secret=True)


def write_dev_pki(pki: DevPki, directory: Path) -> list[Path]:
    """Write every file of ``pki`` under ``directory``; returns the certificate files written."""
    written: list[Path] = []
    for country, parts in pki.countries.items():
        target = directory / country
        target.mkdir(parents=True, exist_ok=True)
        issued_files = (("ca", parts.ca), ("signer", parts.signer), ("gateway", parts.gateway))
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
