"""The pki, sign and verify subcommands (pki init from asw-toolkit), end to end on files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from asw_toolkit.cli import pki as toolkit_pki_cli
from gateway.cli import pki as pki_cli
from gateway.cli import sign as sign_cli
from gateway.cli import verify as verify_cli

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "formd" / "valid" / "sg-th-basic.xml"
CORPUS = Path(__file__).resolve().parents[1] / "security" / "corpus"


def _run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="asw-gateway")
    subparsers = parser.add_subparsers(dest="command", required=True)
    # `pki init` (the development CA) is the testers' tool; the rest is the product's command line
    toolkit = argv[:2] == ("pki", "init")
    for module in (toolkit_pki_cli,) if toolkit else (pki_cli, sign_cli, verify_cli):
        module.register(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A P-256 development PKI made by `pki init`."""
    directory = tmp_path_factory.mktemp("cli-pki")
    assert _run("pki", "init", directory, "--key-type", "p256") == 0
    return directory


def _sign(pki_dir: Path, who: str, out: Path) -> int:
    key_dir = pki_dir / who
    stem = "signer"
    if who.startswith("bad/"):
        key_dir, stem = pki_dir / "bad", who.removeprefix("bad/")
    return _run(
        "sign", SAMPLE, "--key", key_dir / f"{stem}.key", "--cert", key_dir / f"{stem}.pem",
        "-o", out,
    )  # fmt: skip


def test_pki_init_writes_the_layout(pki_dir: Path) -> None:
    """pki init writes ca, signer, gateway, tls and crl per country; CA keys outside DIR."""
    countries = sorted(p.name for p in pki_dir.iterdir() if p.name != "bad")
    assert countries == sorted(["BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN"])
    for name in ("signer", "gateway", "tls"):
        assert (pki_dir / "TH" / f"{name}.pem").is_file()
        assert (pki_dir / "TH" / f"{name}.key").stat().st_mode & 0o077 == 0
    assert (pki_dir / "TH" / "ca.pem").is_file()
    assert not (pki_dir / "TH" / "ca.key").exists()
    ca_key = pki_dir.parent / f"{pki_dir.name}-ca-keys" / "TH" / "ca.key"
    assert ca_key.stat().st_mode & 0o077 == 0
    assert (pki_dir / "TH" / "crl.pem").is_file()
    assert {p.stem for p in (pki_dir / "bad").glob("*.key")} == {
        "expired", "not-yet-valid", "revoked", "wrong-usage", "unknown-ca", "wrong-country"
    }  # fmt: skip


def test_sign_then_verify_prints_the_signer(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify exits 0 and prints subject, country, fingerprint and chain."""
    signed = tmp_path / "signed.xml"
    assert _sign(pki_dir, "SG", signed) == 0
    capsys.readouterr()
    assert _run("verify", signed, "--trust", pki_dir) == 0
    out = capsys.readouterr().out
    assert "CN=SG Document Signer (DEV)" in out
    assert "country     SG" in out
    assert "fingerprint sha256:" in out
    assert "CN=SG Root CA (DEV)" in out
    assert "PRIVATE KEY" not in out


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("MY", "sender-mismatch"),
        ("bad/revoked", "certificate-revoked"),
        ("bad/expired", "certificate-expired"),
        ("bad/wrong-usage", "certificate-usage"),
        ("bad/unknown-ca", "certificate-untrusted"),
    ],
)
def test_verify_reports_a_stable_code_per_file(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], who: str, code: str
) -> None:
    """verify --json exits 1 and gives each file its code."""
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    assert _sign(pki_dir, "SG", good) == 0
    assert _sign(pki_dir, who, bad) == 0
    capsys.readouterr()
    assert _run("verify", good, bad, "--trust", pki_dir, "--json") == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in results] == ["ok", code]


def test_verify_refuses_unsigned_and_hostile_files(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unsigned sample and a billion-laughs file get unsigned and xml-forbidden."""
    assert _run("verify", SAMPLE, CORPUS / "billion_laughs.xml", "--trust", pki_dir, "--json") == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in results] == ["unsigned", "xml-forbidden"]


def test_sign_refuses_hostile_input(pki_dir: Path, tmp_path: Path) -> None:
    """sign reads through the hardened parser: an XXE document is refused with exit 1."""
    out = tmp_path / "never.xml"
    code = _run(
        "sign", CORPUS / "xxe_local_file.xml", "--key", pki_dir / "SG" / "signer.key",
        "--cert", pki_dir / "SG" / "signer.pem", "-o", out,
    )  # fmt: skip
    assert code == 1
    assert not out.exists()


def test_sign_with_mismatched_key_exits_2(pki_dir: Path, tmp_path: Path) -> None:
    """A key that does not belong to the certificate is a usage error (exit 2)."""
    code = _run(
        "sign", SAMPLE, "--key", pki_dir / "MY" / "signer.key",
        "--cert", pki_dir / "SG" / "signer.pem", "-o", tmp_path / "x.xml",
    )  # fmt: skip
    assert code == 2


def test_expiring_reports_crls_within_the_window(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pki expiring lists the 30-day CRLs with a 60-day window (exit 1) and not with 7 days."""
    assert _run("pki", "expiring", "--trust", pki_dir, "--days", "60") == 1
    assert "SG crl" in capsys.readouterr().out
    assert _run("pki", "expiring", "--trust", pki_dir, "--days", "7") == 0
