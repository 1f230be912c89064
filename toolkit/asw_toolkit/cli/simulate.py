"""``asw-toolkit simulate-nsw --country TH --port 9001``: run a simulated national single window.

The simulator (``asw_toolkit.simulator``) receives documents on ``POST /documents`` and answers as
``--behaviour`` says; ``GET /received`` and ``GET /stats`` show what arrived, ``POST /behaviour``
changes the behaviour while it runs. It stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from pathlib import Path

from asw_toolkit.simulator import BEHAVIOURS, Behaviour, RunningSimulator, SimulatorConfig
from asw_toolkit.simulator import find_response_template as default_response_template
from gateway.core.envelope import MEMBER_STATES
from gateway.errors import SettingsError
from gateway.logs import configure_logging
from gateway.pki_files import read_signing_key
from gateway.settings import LogSettings
from gateway.trust_loader import ReloadingTrustStore

EX_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate-nsw`` subcommand."""
    parser = subparsers.add_parser(
        "simulate-nsw", help="run a simulated national single window (an HTTP server)"
    )
    parser.add_argument(
        "--country", required=True, choices=MEMBER_STATES, help="the member state it plays"
    )
    parser.add_argument("--port", type=int, default=9001, help="port to listen on (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--behaviour", choices=BEHAVIOURS, default="accept", help="how it answers documents"
    )
    parser.add_argument(
        "--fail-count",
        type=int,
        default=3,
        metavar="N",
        help="fail-then-recover: requests answered 500 before recovering",
    )
    parser.add_argument(
        "--delay", type=float, default=2.0, metavar="S", help="slow: seconds before answering"
    )
    parser.add_argument("--store", type=Path, metavar="DIR", help="also keep documents here")
    parser.add_argument(
        "--respond-to",
        metavar="URL",
        help="send a Customs Response for each accepted document to URL/v1/messages",
    )
    parser.add_argument(
        "--response-template",
        type=Path,
        metavar="FILE",
        help="Customs Response to answer with (default: samples/response/valid/*.xml)",
    )
    parser.add_argument(
        "--determine-to",
        metavar="URL",
        help="as the importing side, send an origin determination (ODT) after each retroactive "
        "check reply to URL/v1/messages (OCP Rule 18)",
    )
    parser.add_argument("--api-key", help="API key sent with each Customs Response")
    parser.add_argument(
        "--register",
        type=Path,
        metavar="FILE",
        action="append",
        default=[],
        help="a register update or AEO notification of this country: register queries are "
        "answered from these (repeat; none: nothing is in the register)",
    )
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="DIR",
        help="verify every received document against this trust directory (<CC>/ca.pem, crl.pem)",
    )
    parser.add_argument(
        "--sign-with",
        type=Path,
        metavar="DIR",
        help="sign Customs Responses with DIR/<country>/signer.key (a development PKI)",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="key of --tls-cert")
    parser.add_argument(
        "--client-ca", type=Path, metavar="FILE", help="require client certificates from this CA"
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator's configuration; ``SettingsError`` listing every problem otherwise."""
    problems: list[str] = []
    try:
        behaviour = Behaviour(
            name=args.behaviour, fail_count=args.fail_count, delay_seconds=args.delay
        )
    except ValueError as exc:
        problems.append(str(exc))
        behaviour = Behaviour()
    template: bytes | None = None
    if args.respond_to is not None:
        path = args.response_template or default_response_template()
        if path is None:
            problems.append(
                "--respond-to needs a Customs Response to answer with, and there is none yet "
                "under samples/response/valid/*.xml; pass --response-template FILE"
            )
        else:
            try:
                template = path.read_bytes()
            except OSError as exc:
                problems.append(f"--response-template {path}: {exc.strerror}")
    registers: list[bytes] = []
    for path in args.register:
        try:
            registers.append(path.read_bytes())
        except OSError as exc:
            problems.append(f"--register {path}: {exc.strerror}")
    if (args.tls_cert is None) != (args.tls_key is None):
        problems.append("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        problems.append("--client-ca needs --tls-cert and --tls-key")
    if problems:
        raise SettingsError(problems)
    trust = ReloadingTrustStore(args.trust).current if args.trust else None
    response_key = read_signing_key(args.sign_with, args.country) if args.sign_with else None
    return SimulatorConfig(
        country=args.country,
        behaviour=behaviour,
        store_dir=args.store,
        respond_to=args.respond_to,
        response_template=template,
        respond_api_key=args.api_key,
        determine_to=args.determine_to,
        trust=trust,
        response_key=response_key,
        registers=tuple(registers),
    )


def server_ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The HTTPS context asked for by ``--tls-cert``/``--tls-key``/``--client-ca``."""
    if args.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.client_ca is not None:
        context.load_verify_locations(cafile=str(args.client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(
    config: SimulatorConfig, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with RunningSimulator(config, host=host, port=port, ssl_context=ssl_context) as nsw:
            print(
                f"simulated NSW {config.country} on {nsw.documents_url} "
                f"(behaviour {config.behaviour.name}); Ctrl-C stops it",
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Run the simulator; exit 0 when stopped, 2 on a bad option, 1 when it cannot listen."""
    try:
        config = config_from_args(args)
        context = server_ssl_context(args)
    except SettingsError as exc:
        print(f"simulate-nsw: {exc.detail}", file=sys.stderr)
        return EX_USAGE
    except (OSError, ssl.SSLError) as exc:
        print(f"simulate-nsw: cannot load the TLS files: {exc}", file=sys.stderr)
        return EX_USAGE
    configure_logging(LogSettings(level=args.log_level), stream=sys.stderr)
    try:
        asyncio.run(serve(config, args.host, args.port, context))
    except OSError as exc:
        print(f"simulate-nsw: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
