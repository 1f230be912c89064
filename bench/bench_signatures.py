"""Signing and verification speed: the gateway against signxml's bare calls, same run, one core.

    .venv/bin/python bench/bench_signatures.py [--runs 7] [--min-time 0.3]

For the 5 KB Form D sample and a 50 KB one (the sample's goods items repeated, built here in
memory), with RSA-2048 and P-256 keys, it times:

- bare sign: ``XMLSigner(...).sign(tree, key=..., cert=[...])`` on a pre-parsed tree;
- gateway sign: ``gateway.core.signatures.sign(tree, key)``;
- bare verify: ``XMLVerifier().verify(bytes, x509_cert=<pre-loaded certificate>)``;
- gateway verify: ``verify(parse(bytes), trust, now=...)``: hardened parse, shape and algorithm
  checks, signature, chain to a CA of the header's sender, key usage, revocation.

Everything runs in one thread. Each pair is timed interleaved (bare, gateway, bare, ...); the
median per-operation times are reported, and the ratio is the median of the per-run ratios
(robust against other load on the machine).

Targets: gateway verify <= 1.25x bare verify, gateway sign <= 1.1x bare sign.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.core.envelope import NS_FORMD  # noqa: E402
from gateway.core.parsing import ParseLimits, parse  # noqa: E402
from gateway.core.pki import KeyType, build_dev_pki  # noqa: E402
from gateway.core.signatures import EXC_C14N, SigningKey, load_signing_key, sign, verify  # noqa: E402
from gateway.core.trust import CountryTrust, TrustStore  # noqa: E402

SAMPLE = ROOT / "samples" / "formd" / "valid" / "sg-th-basic.xml"
VERIFY_TARGET = 1.25
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
    """Seconds per call of ``fn`` over ``loops`` calls."""
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


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
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
