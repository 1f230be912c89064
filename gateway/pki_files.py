"""Reading the keys of the gateway's own signers from a trust directory ``DIR/<CC>/``.

``DIR`` is a trust directory: it holds certificates and CRLs, plus the keys of the gateway's own
signers (``signer.key``, ``gateway.key``, ``tls.key``). Writing a development PKI in this layout
is tester tooling and lives in the tools package (``asw_toolkit.dev_pki``).
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.signatures import SigningKey, load_signing_key


def read_signing_key(directory: Path, country: str, role: str = "signer") -> SigningKey:
    """``DIR/<CC>/<role>.key`` with its certificate ``<role>.pem`` (role: signer or gateway).

    Raises ``OSError`` when a file is missing or unreadable, ``SettingsError`` when it is not a
    usable key and certificate.
    """
    folder = directory / country
    return load_signing_key(
        (folder / f"{role}.key").read_bytes(), (folder / f"{role}.pem").read_bytes()
    )
