"""``asw-gateway sign``: sign a document with an enveloped XML signature."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lxml import etree

from gateway.core.parsing import parse
from gateway.core.signatures import load_signing_key, sign
from gateway.errors import GatewayError, SettingsError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sign`` subcommand."""
    parser = subparsers.add_parser("sign", help="sign a document (enveloped XML-DSig)")
    parser.add_argument("input", type=Path, help="the document to sign")
    parser.add_argument("--key", type=Path, required=True, help="private key (PEM, unencrypted)")
    parser.add_argument("--cert", type=Path, required=True, help="signing certificate (PEM)")
    parser.add_argument(
        "--chain", type=Path, action="append", default=[], help="intermediate CA (PEM), repeatable"
    )
    parser.add_argument(
        "--digest", choices=("sha256", "sha384", "sha512"), default="sha256", help="hash"
    )
    parser.add_argument("-o", "--output", type=Path, help="where to write (default: stdout)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when signed, 1 when the document is refused, 2 when the key cannot be used."""
    try:
        key = load_signing_key(
            args.key.read_bytes(),
            args.cert.read_bytes(),
            [p.read_bytes() for p in args.chain],
            digest=args.digest,
        )
    except OSError as exc:
        print(f"asw-gateway: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"asw-gateway: {exc.detail}", file=sys.stderr)
        return 2
    try:
        signed = sign(parse(args.input.read_bytes()), key)
    except OSError as exc:
        print(f"asw-gateway: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"{args.input}: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    data = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
    return 0
