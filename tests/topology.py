"""``scripts/topology``: the topology of ``deploy/compose.yaml`` as processes on this machine.

No container engine is needed: a private PostgreSQL cluster (``tests/faults/private_postgres``)
holds the one journal, RabbitMQ is a private three-node cluster (``tests/faults/
private_rabbitmq``, when present and ``--rabbit-nodes 3``) or the local broker under a queue
prefix of its own (``--rabbit-nodes 0``), two simulated NSWs (SG and TH, ``simulate-nsw``) take
deliveries over HTTP, and two gateway nodes (``asw-gateway serve``, each its own supervisor
and port) share the journal and the queue prefix, as the compose file's ``gateway-1`` and
``gateway-2`` do.

    scripts/topology                       # start it, print the addresses, run until Ctrl-C
    scripts/topology --messages 20 --hold 0  # start, send 20 Form Ds through both nodes, stop

With ``--messages N`` it sends N fresh Form Ds SG -> TH, alternating between the two nodes,
waits until the TH simulator has them, and prints one line:
``topology: nodes=2 rabbit=<kind> sent= accepted= delivered= duplicates= lost=``; the exit
status is 0 only when every accepted message arrived exactly once. Everything it started is
stopped by process id at the end (and the shared broker's queues of its prefix deleted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from asw_toolkit.processes import free_port
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import AMQP_URL, SAMPLE_FORMD, delete_topology, with_message_id
from tests.faults.private_postgres import PrivatePostgres

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
READY_SECONDS = 120.0


def _tool(*args: str) -> list[str]:
    """The command line of a tester tool (``asw-toolkit`` when installed, else the product)."""
    toolkit = BIN / "asw-toolkit"
    if toolkit.exists():
        return [str(toolkit), *args]
    return [sys.executable, "-m", "gateway", *args]


def _say(text: str) -> None:
    print(f"topology: {text}", flush=True)


class LocalTopology:
    """Everything the topology started, to stop in reverse order."""

    def __init__(self, base: Path, rabbit_nodes: int, workers: int) -> None:
        self.base = base
        self.rabbit_nodes = rabbit_nodes
        self.workers = workers
        self.prefix = f"topology-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.postgres: PrivatePostgres | None = None
        self.rabbit: object | None = None
        self.amqp_urls: list[str] = [AMQP_URL]
        self.gateways: list[str] = []
        self.nsw: dict[str, str] = {}

    # --- parts ---

    def start_rabbit(self) -> str:
        if self.rabbit_nodes == 0:
            return "shared-broker"
        try:
            from tests.faults.private_rabbitmq import PrivateRabbit  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            _say("tests/faults/private_rabbitmq.py is not here: using the local broker instead")
            self.rabbit_nodes = 0
            return "shared-broker"
        rabbit = PrivateRabbit(self.rabbit_nodes)
        self.rabbit = rabbit
        rabbit.start()
        self.amqp_urls = list(rabbit.urls)
        return f"private-cluster-{self.rabbit_nodes}"

    def start_postgres(self) -> str:
        self.postgres = PrivatePostgres()
        self.postgres.start()
        return f"{self.postgres.url}?pool_max_size=4"

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.base / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            start_new_session=True,
        )
        self.processes.append(process)

    def start_nsw(self, country: str) -> None:
        port = free_port()
        self.spawn(
            f"nsw-{country}", _tool("simulate-nsw", "--country", country, "--port", str(port))
        )
        self.nsw[country] = f"http://127.0.0.1:{port}"

    def gateway_config(self, index: int, pki: Path, journal: str) -> Path:
        port = free_port()
        parties = "".join(
            f'[parties.{cc}]\nadapter = "http-push"\nsign_on_behalf = true\n'
            f'options = {{ url = "{url}/documents", timeout_seconds = "10" }}\n'
            for cc, url in sorted(self.nsw.items())
        )
        urls = ", ".join(f'"{u}"' for u in self.amqp_urls)
        amqp_urls = f"urls = [{urls}]\n" if len(self.amqp_urls) > 1 else ""
        config = self.base / f"gateway-{index}.toml"
        config.write_text(
            f'[node]\nname = "topology-{index}"\nworkers = {self.workers}\n'
            f'[http]\nport = {port}\nauth = "none"\n'
            f'[amqp]\nurl = "{self.amqp_urls[0]}"\n{amqp_urls}prefix = "{self.prefix}"\n'
            f"reconnect_seconds = 0.5\nretry_schedule_seconds = [0.5, 1, 2]\n"
            f'[documents]\nxsd_dir = "{ROOT / "xsd"}"\n'
            f'[pki]\ntrust_dir = "{pki}"\nkeys_dir = "{pki}"\n'
            f'[journal]\nurl = "{journal}"\nlease_seconds = 10\n'
            f'[log]\nformat = "json"\n{parties}',
            encoding="utf-8",
        )
        self.gateways.append(f"http://127.0.0.1:{port}")
        return config

    def start_gateway(self, index: int, config: Path) -> None:
        self.spawn(
            f"gateway-{index}",
            [str(BIN / "asw-gateway"), "serve", "--config", str(config)],
        )

    # --- the whole ---

    def start(self) -> None:
        kind = self.start_rabbit()
        journal = self.start_postgres()
        pki = self.base / "pki"
        subprocess.run(
            _tool("pki", "init", str(pki)), check=True, capture_output=True, cwd=ROOT, timeout=120
        )
        for country in ("SG", "TH"):
            self.start_nsw(country)
        configs = [self.gateway_config(index, pki, journal) for index in (1, 2)]
        # The first node records the journal's identity on the broker, the second finds it.
        for index, config in enumerate(configs, start=1):
            self.start_gateway(index, config)
            self.wait_ready(self.gateways[index - 1], f"gateway-{index}")
        _say(
            f"up: rabbit={kind} ({', '.join(self.amqp_urls)}), journal={journal}, "
            f"gateways={' '.join(self.gateways)}, nsw={json.dumps(self.nsw)}, logs={self.base}"
        )

    def wait_ready(self, url: str, name: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        process = self.processes[-1]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited: {(self.base / f'{name}.log').read_text()[-3000:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url + "/readyz", timeout=2) as answer,  # noqa: S310
            ):
                if answer.status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready in {READY_SECONDS:g} s; see {self.base / name}.log")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self.postgres is not None:
            self.postgres.remove()
        if self.rabbit is not None:
            self.rabbit.remove()  # type: ignore[attr-defined]
        elif self.rabbit_nodes == 0:
            asyncio.run(
                delete_topology(AMQP_URL, Topology(self.prefix), MEMBER_STATES, (500, 1000, 2000))
            )


def send(gateways: list[str], count: int) -> tuple[list[str], list[str]]:
    """Send ``count`` fresh Form Ds, alternating nodes; (sent ids, accepted ids)."""
    sample = SAMPLE_FORMD.read_bytes()
    sent: list[str] = []
    accepted: list[str] = []
    for number in range(count):
        message_id = str(uuid.uuid4())
        sent.append(message_id)
        request = urllib.request.Request(  # noqa: S310
            gateways[number % len(gateways)] + "/v1/messages",
            data=with_message_id(sample, message_id),
            headers={"Content-Type": "application/xml"},
            method="POST",
        )
        with (
            contextlib.suppress(urllib.error.HTTPError),
            urllib.request.urlopen(request, timeout=30) as answer,  # noqa: S310
        ):
            if answer.status == 202:
                accepted.append(message_id)
    return sent, accepted


def received(nsw: str) -> Counter[str]:
    """Message ids the simulated NSW accepted, with how often."""
    with urllib.request.urlopen(nsw + "/received", timeout=5) as answer:  # noqa: S310
        return Counter(json.loads(answer.read())["message_ids"])


@contextlib.contextmanager
def running(rabbit_nodes: int, workers: int) -> Iterator[LocalTopology]:
    base = Path(tempfile.mkdtemp(prefix="asw-topology-"))
    topology = LocalTopology(base, rabbit_nodes, workers)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
        if os.environ.get("TOPOLOGY_KEEP_LOGS") is None:  # set it to keep the logs
            shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/topology", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rabbit-nodes",
        type=int,
        default=3,
        choices=(0, 1, 3),
        help="private RabbitMQ nodes (0: the local broker, own prefix)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per node")
    parser.add_argument("--messages", type=int, default=0, help="Form Ds to send through it")
    parser.add_argument(
        "--hold",
        type=float,
        default=-1,
        help="seconds to keep it running afterwards (-1: until Ctrl-C)",
    )
    args = parser.parse_args()
    status = 0
    with running(args.rabbit_nodes, args.workers) as topology:
        if args.messages:
            sent, accepted = send(topology.gateways, args.messages)
            deadline = time.monotonic() + 60
            got = received(topology.nsw["TH"])
            while not set(accepted) <= set(got) and time.monotonic() < deadline:
                time.sleep(0.5)
                got = received(topology.nsw["TH"])
            delivered = [m for m in accepted if m in got]
            duplicates = sum(got[m] - 1 for m in accepted if got[m] > 1)
            lost = len(accepted) - len(delivered)
            kind = (
                f"private-cluster-{topology.rabbit_nodes}"
                if topology.rabbit_nodes
                else "shared-broker"
            )
            _say(
                f"nodes=2 rabbit={kind} sent={len(sent)} accepted={len(accepted)} "
                f"delivered={len(delivered)} duplicates={duplicates} lost={lost}"
            )
            status = 0 if accepted and not lost and not duplicates else 1
        if args.hold < 0:
            _say("running; Ctrl-C stops everything")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        else:
            time.sleep(args.hold)
    return status


if __name__ == "__main__":
    sys.exit(main())
