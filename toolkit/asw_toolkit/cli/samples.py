"""``asw-toolkit samples generate``: realistic, valid, reproducible documents for testing.

    asw-toolkit samples generate --type formd --count 100 --items 5 --seed 7 out/
    asw-toolkit samples generate --type acdd --count 10 --invalid countries-identical out/

Documents go into OUT with a ``manifest.json`` saying what a gateway should answer to each, so
that ``asw-toolkit replay OUT`` judges the outcomes. The same options (and ``--date``) give
the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

from lxml import etree

from asw_toolkit.sample_set import regenerate
from asw_toolkit.samplegen import BREAKAGES, Generated, generate, invalid_rules, write_set
from gateway.core.envelope import NS_COMMON
from gateway.core.parsing import parse
from gateway.core.signatures import sign
from gateway.pki_files import read_signing_key


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``samples`` subcommand (``samples generate``, ``samples regenerate``)."""
    parser = subparsers.add_parser("samples", help="generate test documents")
    actions = parser.add_subparsers(dest="samples_command", required=True, metavar="ACTION")
    gen = actions.add_parser(
        "generate",
        help="write realistic, reproducible Form D or ACDD documents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("out", type=Path, metavar="OUT", help="folder to write into")
    gen.add_argument("--type", choices=("formd", "acdd"), required=True, dest="kind")
    gen.add_argument("--count", type=int, default=10, metavar="N", help="documents (10)")
    gen.add_argument("--items", type=int, default=3, metavar="K", help="goods items each (3)")
    gen.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (1)")
    gen.add_argument(
        "--date",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="reference day: every date lies before it (default: today, UTC)",
    )
    gen.add_argument(
        "--invalid",
        metavar="RULE",
        choices=sorted(BREAKAGES),
        help="break exactly this rule in every document (a finding code: "
        + ", ".join(sorted(BREAKAGES))
        + ")",
    )
    gen.add_argument(
        "--sign-with",
        type=Path,
        metavar="DIR",
        help="sign with the sender country's key from a development PKI (DIR/<CC>/signer.key)",
    )
    gen.set_defaults(handler=run)
    regen = actions.add_parser(
        "regenerate",
        help="rewrite the derived documents of the committed samples/ and its manifest.json",
    )
    regen.add_argument(
        "--dir", type=Path, default=Path("samples"), help="the samples folder (default samples)"
    )
    regen.set_defaults(handler=run_regenerate)


def run_regenerate(args: argparse.Namespace) -> int:
    """Rewrite the committed sample set in place; the same inputs give the same bytes."""
    if not (args.dir / "formd" / "valid").is_dir():
        print(f"samples: {args.dir} is not a samples folder (no formd/valid/)", file=sys.stderr)
        return 2
    entries, large = regenerate(args.dir)
    print(f"{entries} samples; large Form D {large:,} bytes")
    return 0


def run(args: argparse.Namespace) -> int:
    """Generate, optionally sign, write; print what was written."""
    if args.count < 1 or args.items < 1:
        print("samples: --count and --items must be at least 1", file=sys.stderr)
        return 2
    if args.invalid and args.kind not in BREAKAGES[args.invalid].kinds:
        print(
            f"samples: --invalid {args.invalid} does not apply to {args.kind}; choose one of "
            + ", ".join(invalid_rules(args.kind)),
            file=sys.stderr,
        )
        return 2
    now = datetime.combine(args.date, time(), tzinfo=UTC) if args.date else None
    documents = list(
        generate(
            args.kind,
            count=args.count,
            items=args.items,
            seed=args.seed,
            invalid=args.invalid,
            now=now,
        )
    )
    if args.sign_with:
        documents = [_signed(doc, args.sign_with) for doc in documents]
    written = write_set(args.out, documents)
    size = sum(p.stat().st_size for p in written)
    what = f"breaking {args.invalid}" if args.invalid else "valid"
    print(f"{len(written)} {args.kind} documents ({what}), {size:,} bytes, in {args.out}")
    return 0


def _signed(doc: Generated, pki_dir: Path) -> Generated:
    root = parse(doc.data)
    country = (
        root.findtext(
            f"{{{NS_COMMON}}}MessageHeader/{{{NS_COMMON}}}SenderParty/{{{NS_COMMON}}}CountryCode"
        )
        or ""
    )
    try:
        key = read_signing_key(pki_dir, country)
    except OSError:
        print(
            f"samples: no signing key for {country or '?'} in {pki_dir}; {doc.name} unsigned",
            file=sys.stderr,
        )
        return doc
    data = etree.tostring(sign(root, key), xml_declaration=True, encoding="UTF-8")
    return Generated(name=doc.name, data=bytes(data), valid=doc.valid, codes=doc.codes)
