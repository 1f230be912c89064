"""What a worker spends on the worst hostile 8 MiB document, next to an honest 5 KB Form D.

    .venv/bin/python bench/bench_hostile.py [--runs 3]

Each document goes through the gateway's ingest path (``Ingest.accept``: hardened parse, header,
signature shape and value, trust store path validation, then XSD and rules for what passes) in
a fresh child process, which reports the CPU seconds (user + system, ``getrusage``) of that one
call and the peak RSS the call added over the process's peak before it (the document's bytes
included: they are read after the baseline). The documents, all refused except the honest one:

- ``honest``: samples/formd/valid/sg-th-basic.xml signed by the development PKI's SG signer
  (measured with a fresh trust store: path validation and CRL look-up included);
- ``fake-cas``: signed by the attacker's own C=SG "document signer" whose KeyInfo carries, up
  to 8 MiB, copies of a fake "SG Root CA" with a 3072-bit RSA key and a 3064-bit public
  exponent (each copy's base64 wrapped differently, so no text-keyed cache helps). Before the
  trust policy, each copy was tried as an issuer, with one slow RSA operation each;
- ``padded``: the same attacker signer with eight fake CAs (within the count limit) and about
  8 MiB of signed content: 60-deep nested elements with long text, repeated up to just under
  the parser's tag limit (parse, C14N and digest of all of it run before the trust decision);
- ``padded-plausible``: the same padded content from a signer whose chain passes every cheap
  check (ordinary keys, a fake "SG Root CA"): all 8 MiB are canonicalised and digested by
  signxml before path validation refuses the CA;
- ``slow-signer``: the attacker's signer itself has the huge exponent (one slow signature
  check is the most it can cost), with the fake CAs up to 8 MiB.

Target: every hostile document under 1 s of CPU and under 50 MB of added peak RSS.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import gc
import json
import math
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asw_toolkit.dev_pki import KeyType, build_dev_pki, document_signing  # noqa: E402
from gateway.core.envelope import NS_DSIG  # noqa: E402
from gateway.core.parsing import ParseLimits, parse  # noqa: E402
from gateway.core.signatures import load_signing_key, sign  # noqa: E402

SAMPLE = ROOT / "samples" / "formd" / "valid" / "sg-th-basic.xml"
LIMIT = ParseLimits().max_bytes  # 8 MiB, the default body limit
CPU_TARGET = 1.0
RSS_TARGET_MB = 50.0
CASES = ("honest", "fake-cas", "padded", "padded-plausible", "slow-signer")
DS = f"{{{NS_DSIG}}}"


def _rsa_with_exponent(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent is nearly as long as its modulus."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    p, q = numbers.p, numbers.q
    phi = (p - 1) * (q - 1)
    while True:
        e = secrets.randbits(bits - 8) | (1 << (bits - 9)) | 1
        if math.gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    return rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e=e, n=p * q),
    ).private_key(unsafe_skip_rsa_key_validation=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SG"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SG Issuing Authority (DEV)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if subject == issuer:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(document_signing(), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _wrapped(der: bytes, index: int) -> str:
    """Base64 of ``der`` with a line width that differs from copy to copy."""
    text = base64.b64encode(der).decode()
    return "\n" + "\n".join(textwrap.wrap(text, 40 + index % 37)) + "\n"


def _add_certificates(root: etree._Element, der: bytes, *, upto: int | None, count: int) -> None:
    """Append copies of ``der`` to KeyInfo/X509Data: ``count`` of them, or up to ``upto`` bytes."""
    data = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data")
    assert data is not None
    size = len(etree.tostring(root))
    made = 0
    while made < count or (upto is not None and size < upto):
        element = etree.SubElement(data, f"{DS}X509Certificate")
        element.text = _wrapped(der, made)
        size += len(element.text) + 44
        made += 1


def _padding(root: etree._Element, upto: int, *, tags: int) -> None:
    """Append 60-deep chains of elements to the (to be signed) document, up to ``upto`` bytes.

    The chains hold at most ``tags`` tags in all (the parser's ``max_markup`` refuses more before
    building a tree), so each element carries text long enough to fill the bytes: the worst
    document that still reaches canonicalisation and the digest.
    """
    namespace = etree.QName(root).namespace
    before = len(etree.tostring(root))
    chains = max(1, tags // (2 * 59))
    text = "x" * max(1, (upto - before) // (chains * 59) - 8)
    chain = etree.SubElement(root, f"{{{namespace}}}Pad")
    parent = chain
    for _ in range(58):
        parent = etree.SubElement(parent, f"{{{namespace}}}P")
        parent.text = text
    size = len(etree.tostring(root))
    per_chain = size - before
    while size + per_chain < upto:
        root.append(copy.deepcopy(chain))
        size += per_chain


def build_documents(folder: Path) -> None:
    """Write the PKI's trust data and the four documents into ``folder``."""
    now = datetime.now(UTC)
    pki = build_dev_pki(now=now, key_type=KeyType.RSA2048, countries=("SG", "MY", "TH"))
    for country, parts in pki.countries.items():
        (folder / f"{country}-ca.pem").write_bytes(parts.ca.cert_pem)
        (folder / f"{country}-crl.pem").write_bytes(parts.crl_pem)
    sg = pki.countries["SG"]
    honest = sign(
        parse(SAMPLE.read_bytes()), load_signing_key(sg.signer.key_pem, sg.signer.cert_pem)
    )
    (folder / "honest.xml").write_bytes(
        etree.tostring(honest, xml_declaration=True, encoding="UTF-8")
    )

    root_name = x509.load_pem_x509_certificate(sg.ca.cert_pem).subject
    slow_key = _rsa_with_exponent(3072)
    fake_ca = _certificate(root_name, slow_key, root_name, slow_key)
    fake_der = fake_ca.public_bytes(serialization.Encoding.DER)
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker = _certificate(_name("SG Document Signer (DEV)"), attacker_key, root_name, slow_key)
    attacker_signing = load_signing_key(
        _pem(attacker_key), attacker.public_bytes(serialization.Encoding.PEM)
    )
    slow_signer_key = _rsa_with_exponent(2048)
    slow_signer = _certificate(
        _name("SG Document Signer (DEV)"), slow_signer_key, root_name, slow_key
    )
    slow_signing = load_signing_key(
        _pem(slow_signer_key), slow_signer.public_bytes(serialization.Encoding.PEM)
    )
    budget = LIMIT - 4096

    fake_cas = sign(parse(SAMPLE.read_bytes()), attacker_signing)
    _add_certificates(fake_cas, fake_der, upto=budget, count=0)
    padded_source = parse(SAMPLE.read_bytes())
    _padding(padded_source, budget - 160 * 1024, tags=ParseLimits().max_markup - 2_000)
    padded = sign(padded_source, attacker_signing)
    _add_certificates(padded, fake_der, upto=None, count=8)
    # The same padded content from a signer whose whole chain passes every cheap check (good
    # keys, a fake "SG Root CA" with an ordinary key): signxml canonicalises and digests all
    # 8 MiB before the trust decision refuses it. The worst case that reaches the cryptography.
    plain_ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    plain_ca = _certificate(root_name, plain_ca_key, root_name, plain_ca_key)
    plausible_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    plausible = _certificate(
        _name("SG Document Signer (DEV)"), plausible_key, root_name, plain_ca_key
    )
    plausible_signing = load_signing_key(
        _pem(plausible_key), plausible.public_bytes(serialization.Encoding.PEM)
    )
    padded_plausible = sign(copy.deepcopy(padded_source), plausible_signing)
    _add_certificates(
        padded_plausible, plain_ca.public_bytes(serialization.Encoding.DER), upto=None, count=1
    )
    slow = sign(parse(SAMPLE.read_bytes()), slow_signing)
    _add_certificates(slow, fake_der, upto=budget, count=0)
    for name, tree in (
        ("fake-cas", fake_cas),
        ("padded", padded),
        ("padded-plausible", padded_plausible),
        ("slow-signer", slow),
    ):
        data = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
        assert len(data) <= LIMIT, (name, len(data))
        (folder / f"{name}.xml").write_bytes(data)


def run_case(folder: Path, case: str) -> dict[str, object]:
    """In a child process: ingest one document and report its CPU and peak RSS."""
    from gateway.core.pipeline import Ingest
    from gateway.core.routing import RoutingTable
    from gateway.core.topology import Topology
    from gateway.core.trust import CountryTrust, TrustStore
    from gateway.core.validation import Validator
    from gateway.errors import GatewayError

    def fresh_trust() -> TrustStore:
        return TrustStore(
            CountryTrust.from_pem(
                country,
                anchors=[(folder / f"{country}-ca.pem").read_bytes()],
                crls=[(folder / f"{country}-crl.pem").read_bytes()],
            )
            for country in ("SG", "MY", "TH")
        )

    ingest = Ingest(
        limits=ParseLimits(),
        validator=Validator.load(ROOT / "xsd"),
        routes=RoutingTable(topology=Topology("bench"), receivers=frozenset({"SG", "MY", "TH"})),
    )
    # Warm the code paths (imports, schema use) with the honest document, then measure.
    # The measured call gets a trust store of its own: no decision cached (the cold case).
    warm = fresh_trust()
    ingest.accept((folder / "honest.xml").read_bytes(), now=datetime.now(UTC), trust=warm)
    trust = fresh_trust()
    path = folder / f"{case}.xml"
    started = _cpu()
    with contextlib.suppress(GatewayError):
        parse(path.read_bytes(), ParseLimits())
    parse_cpu = _cpu() - started
    gc.collect()
    baseline = _reset_peak_rss()
    started = _cpu()
    data = path.read_bytes()
    outcome = "accepted"
    try:
        ingest.accept(data, now=datetime.now(UTC), trust=trust)
    except GatewayError as exc:
        outcome = exc.code
    cpu = _cpu() - started
    peak = _status_kb("VmHWM")
    return {
        "case": case,
        "bytes": len(data),
        "outcome": outcome,
        "cpu_s": cpu,
        "parse_cpu_s": parse_cpu,
        "peak_rss_mb": peak / 1024,
        "added_rss_mb": (peak - baseline) / 1024,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS and return that, in KiB.

    ``ru_maxrss`` cannot be used: Linux carries it over ``execve`` from the parent process.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def main() -> int:
    """Build the documents once, then measure each in fresh child processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="child processes per document")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(Path(args.child[0]), args.child[1])))
        return 0
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        folder = Path(tmp)
        build_documents(folder)
        header = f"{'document':<12} {'bytes':>9} {'outcome':<22} {'cpu s':>7} {'parse s':>7}"
        print(f"{header} {'+rss MB':>8} {'peak MB':>8}")
        for case in CASES:
            rows = []
            for _ in range(args.runs):
                child = subprocess.run(
                    [sys.executable, __file__, "--child", str(folder), case],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONHASHSEED": "0"},
                )
                rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            cpu = statistics.median(float(r["cpu_s"]) for r in rows)
            parse_cpu = statistics.median(float(r["parse_cpu_s"]) for r in rows)
            added = statistics.median(float(r["added_rss_mb"]) for r in rows)
            peak = statistics.median(float(r["peak_rss_mb"]) for r in rows)
            first = rows[0]
            print(
                f"{case:<12} {first['bytes']:>9} {first['outcome']!s:<22} {cpu:>7.3f} "
                f"{parse_cpu:>7.3f} {added:>8.1f} {peak:>8.1f}"
            )
            if case != "honest" and (cpu >= CPU_TARGET or added >= RSS_TARGET_MB):
                failed = True
    print(
        f"target for hostile documents: < {CPU_TARGET} s CPU and < {RSS_TARGET_MB} MB added "
        f"peak RSS: {'MISSED' if failed else 'met'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
