"""``scripts/topology``: the topology of ``deploy/compose.yaml`` as processes on this machine.

No container engine is needed: a private PostgreSQL cluster (``tests/faults/private_postgres``)
holds the one journal, RabbitMQ is a private three-node cluster of its own
(``tests/faults/private_rabbitmq``: own node names, ports, data folders, cookie and epmd; the
shared broker on 5672 is never used), two simulated NSWs (SG and TH, ``simulate-nsw``) take
deliveries over HTTP, and two gateway nodes (``asw-gateway serve``, each its own supervisor
and port) share the journal and the queue prefix and are given every RabbitMQ node's address
(``amqp.urls``), as the compose file's ``gateway-1`` and ``gateway-2`` are.

    scripts/topology                       # start it, print the addresses, run until Ctrl-C
    scripts/topology --messages 20 --hold 0  # start, send 20 Form Ds through both nodes, stop

With ``--messages N`` it sends N fresh Form Ds SG -> TH, alternating between the two nodes,
waits until the TH simulator has them, asks the cluster where the gateway's queues are, and
prints one line:
``scenario=topology-compose nodes=2 rabbit=cluster-3 sent= accepted= delivered= duplicates=
lost= accepted_per_node=a,b queues=N quorum=N replicas=R leaders=K seconds=S``; the exit status
is 0 only when both nodes accepted, every accepted message arrived exactly once and every queue
of the gateway is a quorum queue with a member on every node of the private cluster. Everything
it started is stopped by process id at the end and its folders deleted.
"""

from __future__ import annotations

import argparse
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
from tests.conftest import SAMPLE_FORMD, with_message_id
from tests.faults.private_postgres import PrivatePostgres
from tests.faults.private_rabbitmq import PrivateRabbit

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
        self.rabbit: PrivateRabbit | None = None
        self.amqp_urls: list[str] = []
        self.gateways: list[str] = []
        self.nsw: dict[str, str] = {}

    # --- parts ---

    @property
    def rabbit_kind(self) -> str:
        """``cluster-3`` (or ``node-1``): what carries the gateway's queues."""
        if self.rabbit_nodes == 1:
            return "node-1"
        return f"cluster-{self.rabbit_nodes}"

    def start_rabbit(self) -> str:
        """The private RabbitMQ (never the shared broker): started, clustered, addresses kept."""
        rabbit = PrivateRabbit(self.rabbit_nodes)
        self.rabbit = rabbit
        rabbit.start()
        self.amqp_urls = list(rabbit.urls)
        return self.rabbit_kind

    def gateway_queues(self) -> list[tuple[str, str, str, int]]:
        """(name, type, leader, members) of each queue of this topology's prefix, asked of the
        cluster (``rabbitmqctl list_queues``)."""
        assert self.rabbit is not None
        out = self.rabbit.alive().ctl(
            "list_queues", "name", "type", "leader", "members", "--no-table-headers", "--quiet"
        )
        queues = []
        for line in out.splitlines():
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) == 4 and fields[0].startswith(self.prefix + "."):
                members = len([m for m in fields[3].strip("[]").split(",") if m.strip()])
                queues.append((fields[0], fields[1], fields[2], members))
        return queues

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
            f"up: rabbit={kind} ({', '.join(self.amqp_urls)}), prefix={self.prefix}, "
            f"journal={journal}, "
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
        """Stop, by pid, everything started here (newest first), then delete the folders; say
        which process groups (``pgid=``) and servers (``pid=``) were stopped."""
        stopped: list[str] = []
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
            stopped.append(f"pgid={process.pid}")
        if self.postgres is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_file = self.postgres.data / "postmaster.pid"
                stopped.append(f"pid={int(pid_file.read_text().split()[0])}")
            self.postgres.remove()
        if self.rabbit is not None:
            stopped += [f"pgid={n.process.pid}" for n in self.rabbit.nodes if n.process]
            if self.rabbit.epmd is not None:
                stopped.append(f"pgid={self.rabbit.epmd.pid}")
            self.rabbit.remove()
        _say(f"stopped: {' '.join(stopped)}")


def send(gateways: list[str], count: int) -> tuple[list[str], list[list[str]]]:
    """Send ``count`` fresh Form Ds, alternating nodes; (sent ids, accepted ids per node)."""
    sample = SAMPLE_FORMD.read_bytes()
    sent: list[str] = []
    accepted: list[list[str]] = [[] for _ in gateways]
    for number in range(count):
        message_id = str(uuid.uuid4())
        sent.append(message_id)
        node = number % len(gateways)
        request = urllib.request.Request(  # noqa: S310
            gateways[node] + "/v1/messages",
            data=with_message_id(sample, message_id),
            headers={"Content-Type": "application/xml"},
            method="POST",
        )
        with (
            contextlib.suppress(urllib.error.HTTPError),
            urllib.request.urlopen(request, timeout=30) as answer,  # noqa: S310
        ):
            if answer.status == 202:
                accepted[node].append(message_id)
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


def run_messages(topology: LocalTopology, count: int) -> int:
    """Send ``count`` Form Ds through both nodes, count them at the TH NSW, print the summary
    line; 0 when every accepted one arrived once, both nodes took some, queues are quorum."""
    started = time.monotonic()
    sent, per_node = send(topology.gateways, count)
    accepted = [m for ids in per_node for m in ids]
    deadline = time.monotonic() + 60
    got = received(topology.nsw["TH"])
    while not set(accepted) <= set(got) and time.monotonic() < deadline:
        time.sleep(0.3)
        got = received(topology.nsw["TH"])
    seconds = time.monotonic() - started
    # a late duplicate would show up a moment after the last first arrival
    time.sleep(1.0)
    got = received(topology.nsw["TH"])
    delivered = [m for m in accepted if m in got]
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    lost = len(accepted) - len(delivered)
    queues = topology.gateway_queues()
    quorum = sum(1 for _, kind, _, _ in queues if kind == "quorum")
    leaders = len({leader for _, _, leader, _ in queues})
    replicas = min((members for *_, members in queues), default=0)
    print(
        f"scenario=topology-compose nodes={len(topology.gateways)} "
        f"rabbit={topology.rabbit_kind} sent={len(sent)} accepted={len(accepted)} "
        f"delivered={len(delivered)} duplicates={duplicates} lost={lost} "
        f"accepted_per_node={','.join(str(len(ids)) for ids in per_node)} "
        f"queues={len(queues)} quorum={quorum} replicas={replicas} leaders={leaders} "
        f"seconds={seconds:.1f}",
        flush=True,
    )
    healthy = (
        len(accepted) == len(sent)
        and all(per_node)
        and not lost
        and not duplicates
        and queues
        and quorum == len(queues)
        and replicas == topology.rabbit_nodes
    )
    return 0 if healthy else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/topology", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rabbit-nodes",
        type=int,
        default=3,
        choices=(1, 3),
        help="private RabbitMQ nodes (3: a cluster, as in compose)",
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
            status = run_messages(topology, args.messages)
        if args.hold < 0:
            _say("running; Ctrl-C stops everything")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        else:
            time.sleep(args.hold)
    return status


if __name__ == "__main__":
    sys.exit(main())
