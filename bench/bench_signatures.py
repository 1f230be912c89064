"""Signing and verification speed: the gateway against signxml's bare calls, same run, one core.

    .venv/bin/python bench/bench_signatures.py [--runs 7] [--min-time 0.3]

signxml is the gateway's signature engine, so this measures what the gateway adds around it.
For the 5 KB Form D sample and a 50 KB one (the sample's goods items repeated, built here in
memory), with RSA-2048 and P-256 keys, it times:

- bare sign: ``XMLSigner(...).sign(tree, key=..., cert=[...])`` on a pre-parsed tree;
- gateway sign: ``gateway.core.signatures.sign(tree, key)`` (signxml's signer, copying the
  root with ``deepcopy`` instead of re-parsing it twice, plus the refusal of a signed tree);
- bare verify: ``XMLVerifier().verify(bytes, x509_cert=<pre-loaded certificate>)``;
- gateway verify: ``verify(parse(bytes), trust, now=...)``: hardened parse, shape and algorithm
  checks, KeyInfo limits and key policy, signxml's verify, chain to a CA of the header's
  sender, key usage, revocation.

Everything runs in one thread and is timed in that thread's CPU time (the machine is shared).
Each pair is timed interleaved (bare, gateway, bare, ...); the median per-operation times are
reported, and the ratio is the median of the per-run ratios.

Then the cost of refusing hostile KeyInfo (issue 12, section 4) next to an honest verify, each
with the content changed after signing so that nothing but the KeyInfo check could refuse it
cheaply: too many certificates, an oversized certificate, fake CAs with a huge RSA exponent.

Targets: gateway verify <= 1.5x bare verify (the hardened parse and the trust checks are extra
work bare signxml does not do), gateway sign <= 1.1x bare sign; a hostile refusal costs no more
than an honest verify.
"""

from __future__ import annotations

import argparse
import base64
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asw_toolkit.dev_pki import KeyType, build_dev_pki  # noqa: E402
from gateway.core.envelope import NS_FORMD  # noqa: E402
from gateway.core.parsing import ParseLimits, parse  # noqa: E402
from gateway.core.signatures import (  # noqa: E402
    EXC_C14N,
    MAX_CERTIFICATE_BYTES,
    MAX_CERTIFICATES,
    SigningKey,
    load_signing_key,
    sign,
    verify,
)
from gateway.core.trust import CountryTrust, TrustStore  # noqa: E402
from gateway.errors import SignatureProblem  # noqa: E402

DS = "{http://www.w3.org/2000/09/xmldsig#}"

SAMPLE = ROOT / "samples" / "formd" / "valid" / "sg-th-basic.xml"
VERIFY_TARGET = 1.5
SIGN_TARGET = 1.10


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured pair."""

    doc: str
    key: str
    op: str
    bare_ms: float
    gateway_ms: float
    ratio: float  # median of the per-run gateway/bare ratios
    target: float


def enlarge(data: bytes, target_bytes: int) -> bytes:
    """Repeat the sample's goods items (renumbered) until the document reaches the target."""
    root = parse(data)
    items = [
        el
        for el in root.iter(f"{{{NS_FORMD}}}*")
        if etree.QName(el).localname.endswith("GoodsItem")
    ]
    if not items:
        raise SystemExit("the sample has no GoodsItem to repeat")
    parent = items[-1].getparent()
    assert parent is not None
    insert_at = parent.index(items[-1]) + 1
    number = len(items)
    while len(etree.tostring(root)) < target_bytes:
        for item in items:
            number += 1
            clone = copy.deepcopy(item)
            seq = clone.find(f"{{{NS_FORMD}}}SequenceNumeric")
            if seq is not None:
                seq.text = str(number)
            parent.insert(insert_at, clone)
            insert_at += 1
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def per_op(fn: Callable[[], object], loops: int) -> float:
    """CPU seconds (this thread) per call of ``fn`` over ``loops`` calls."""
    start = time.thread_time()
    for _ in range(loops):
        fn()
    return (time.thread_time() - start) / loops


def calibrate(fn: Callable[[], object], min_time: float) -> int:
    """A loop count that makes one timed run last at least ``min_time`` seconds."""
    loops = 1
    while per_op(fn, loops) * loops < min_time:
        loops *= 2
    return loops


def compare(
    bare: Callable[[], object], gateway: Callable[[], object], *, runs: int, min_time: float
) -> tuple[float, float, float]:
    """Median ms per call of each, timed interleaved, and the median of the per-run ratios."""
    loops = max(calibrate(bare, min_time), calibrate(gateway, min_time))
    bare_times, gateway_times = [], []
    for _ in range(runs):
        bare_times.append(per_op(bare, loops))
        gateway_times.append(per_op(gateway, loops))
    ratios = [g / b for b, g in zip(bare_times, gateway_times, strict=True)]
    return (
        statistics.median(bare_times) * 1e3,
        statistics.median(gateway_times) * 1e3,
        statistics.median(ratios),
    )


def bare_signer(key: SigningKey) -> XMLSigner:
    """signxml's signer configured as the gateway signs."""
    return XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.signature_method,
        digest_algorithm=key.digest_algorithm,
        c14n_algorithm=EXC_C14N,
    )


def bench_key(
    key_type: KeyType, docs: dict[str, bytes], *, runs: int, min_time: float, now: datetime
) -> list[Row]:
    """Every document with one key type."""
    pki = build_dev_pki(now=now, key_type=key_type, countries=("SG", "MY", "TH"))
    store = TrustStore(
        CountryTrust.from_pem(c, anchors=[p.ca.cert_pem], crls=[p.crl_pem])
        for c, p in pki.countries.items()
    )
    sg = pki.countries["SG"]
    key = load_signing_key(sg.signer.key_pem, sg.signer.cert_pem)
    cert: x509.Certificate = key.certificate
    limits = ParseLimits()
    rows = []
    for doc_name, data in docs.items():
        tree = parse(data, limits)
        signed = etree.tostring(sign(tree, key))
        verify(parse(signed), store, now=now)  # fails loudly if the setup is wrong

        def bare_sign(tree: etree._Element = tree) -> object:
            return bare_signer(key).sign(tree, key=key.private_key, cert=[cert])

        def gateway_sign(tree: etree._Element = tree) -> object:
            return sign(tree, key)

        def bare_verify(signed: bytes = signed) -> object:
            return XMLVerifier().verify(signed, x509_cert=cert)

        def gateway_verify(signed: bytes = signed) -> object:
            return verify(parse(signed, limits), store, now=now)

        for op, bare, gateway, target in (
            ("sign", bare_sign, gateway_sign, SIGN_TARGET),
            ("verify", bare_verify, gateway_verify, VERIFY_TARGET),
        ):
            bare_ms, gateway_ms, ratio = compare(bare, gateway, runs=runs, min_time=min_time)
            rows.append(
                Row(
                    doc=f"{doc_name} ({len(signed) // 1024} KB signed)",
                    key=key_type.value,
                    op=op,
                    bare_ms=bare_ms,
                    gateway_ms=gateway_ms,
                    ratio=ratio,
                    target=target,
                )
            )
    return rows


def _huge_exponent_ca(ca: x509.Certificate, now: datetime) -> bytes:
    """A fake CA named like ``ca`` whose RSA-3072 key has a 3000-bit public exponent (DER)."""
    signing = rsa.generate_private_key(65537, 3072)
    public = rsa.RSAPublicNumbers(
        (1 << 3000) + 1, signing.public_key().public_numbers().n
    ).public_key()
    fake = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(signing, hashes.SHA256())
    )
    return fake.public_bytes(Encoding.DER)


def hostile_documents(now: datetime) -> tuple[dict[str, bytes], TrustStore, bytes]:
    """Hostile KeyInfo variants of the signed 5 KB sample (content changed), and an honest one."""
    pki = build_dev_pki(now=now, key_type=KeyType.RSA2048, countries=("SG", "MY", "TH"))
    store = TrustStore(
        CountryTrust.from_pem(c, anchors=[p.ca.cert_pem], crls=[p.crl_pem])
        for c, p in pki.countries.items()
    )
    sg = pki.countries["SG"]
    key = load_signing_key(sg.signer.key_pem, sg.signer.cert_pem)
    honest = etree.tostring(sign(parse(SAMPLE.read_bytes()), key))
    ca = x509.load_pem_x509_certificate(sg.ca.cert_pem)
    fake = _huge_exponent_ca(ca, now)

    def variant(extra: list[bytes]) -> bytes:
        root = parse(honest.replace(b"SG26-CO-0012345", b"SG26-CO-0099999"))
        data = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data")
        assert data is not None
        for der in extra:
            etree.SubElement(data, f"{DS}X509Certificate").text = base64.b64encode(der).decode()
        return etree.tostring(root)

    ca_der = ca.public_bytes(Encoding.DER)
    docs = {
        f"{MAX_CERTIFICATES + 1} certificates": variant([ca_der] * MAX_CERTIFICATES),
        "oversized certificate": variant([b"\x30" * (MAX_CERTIFICATE_BYTES + 1)]),
        "4 huge-exponent fake CAs": variant([fake] * 4),
    }
    return docs, store, honest


def bench_hostile(*, runs: int, min_time: float, now: datetime) -> list[tuple[str, float, str]]:
    """Milliseconds to refuse each hostile document, and to verify the honest one."""
    docs, store, honest = hostile_documents(now)
    limits = ParseLimits()

    def honest_verify() -> object:
        return verify(parse(honest, limits), store, now=now)

    rows = [("honest 5 KB Form D (accepted)", _median_ms(honest_verify, runs, min_time), "")]
    for name, data in docs.items():

        def refuse(data: bytes = data, name: str = name) -> str:
            try:
                verify(parse(data, limits), store, now=now)
            except SignatureProblem as exc:
                return exc.code
            raise SystemExit(f"{name}: accepted")

        rows.append((name, _median_ms(refuse, runs, min_time), refuse()))
    return rows


def _median_ms(fn: Callable[[], object], runs: int, min_time: float) -> float:
    loops = calibrate(fn, min_time)
    return statistics.median(per_op(fn, loops) for _ in range(runs)) * 1e3


def main() -> int:
    """Run the benchmark and print the table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--pin", action="store_true", help="pin the process to one CPU")
    args = parser.parse_args()
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    small = SAMPLE.read_bytes()
    docs = {"5KB": small, "50KB": enlarge(small, 50 * 1024)}
    now = datetime.now(UTC)
    print(f"sizes: 5KB sample {len(small)} bytes, 50KB document {len(docs['50KB'])} bytes")
    rows: list[Row] = []
    for key_type in (KeyType.RSA2048, KeyType.P256):
        rows.extend(bench_key(key_type, docs, runs=args.runs, min_time=args.min_time, now=now))
    header = (
        f"{'document':<22} {'key':<8} {'op':<7} {'bare ms':>8} {'gw ms':>8} "
        f"{'bare/s':>8} {'gw/s':>8} {'ratio':>6} {'target':>7}"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for row in rows:
        ok = row.ratio <= row.target
        missed += not ok
        print(
            f"{row.doc:<22} {row.key:<8} {row.op:<7} {row.bare_ms:8.3f} {row.gateway_ms:8.3f} "
            f"{1e3 / row.bare_ms:8.0f} {1e3 / row.gateway_ms:8.0f} {row.ratio:6.2f} "
            f"{'<=' + format(row.target, '.2f'):>7} {'ok' if ok else 'MISSED'}"
        )
    print()
    hostile = bench_hostile(runs=args.runs, min_time=args.min_time, now=now)
    honest_ms = hostile[0][1]
    print(
        f"{'refusing hostile KeyInfo (5 KB Form D, rsa2048)':<48} {'ms':>8} {'x honest':>9}  code"
    )
    for name, ms, code in hostile:
        ok = ms <= honest_ms or not code
        missed += not ok
        print(f"{name:<48} {ms:8.3f} {ms / honest_ms:9.2f}  {code}{'' if ok else '  MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
