"""A real gateway that requires signatures, and the tester commands wired into a parser."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from asw_toolkit.processes import GatewayProcess
from tests.conftest import started
from tests.pki_fixtures import PkiBundle

TESTER_COMMANDS = (
    "asw_toolkit.cli.send",
    "asw_toolkit.cli.replay",
    "asw_toolkit.cli.conformance",
    "asw_toolkit.cli.samples",
)


def cli(*argv: str) -> int:
    """Run an ``asw-toolkit`` tester command in this process; return its exit code."""
    parser = argparse.ArgumentParser(prog="asw-toolkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in TESTER_COMMANDS:
        importlib.import_module(name).register(subparsers)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@pytest.fixture(scope="module")
def signed_gateway(
    tmp_path_factory: pytest.TempPathFactory, amqp_url: str, rsa_pki: PkiBundle
) -> Iterator[GatewayProcess]:
    """One gateway per module, signing for nobody: every document must carry a signature."""
    gateway = GatewayProcess(
        workdir=tmp_path_factory.mktemp("testkit-gateway"),
        amqp_url=amqp_url,
        pki_dir=rsa_pki.directory,
        workers=1,
        sign_on_behalf=False,
    )
    with started(gateway):
        yield gateway


@pytest.fixture(name="pki_dir")
def _pki_dir(rsa_pki: PkiBundle) -> Path:
    return rsa_pki.directory
