"""The one launcher of gateway processes for tests: the real ``asw-gateway serve``.

``GatewayProcess`` writes its own configuration (all ten member states, drop folders unless
told otherwise); ``ConfiguredGateway`` runs a committed configuration
(``config/federation/*.toml``) with per-run values given as ``ASW_*`` environment overrides,
the way an operator would. Both start ``python -m gateway serve`` in a process group of its own
through ``ServeProcess``, wait for ``/readyz``, and stop with SIGTERM, then SIGKILL. Tests and
benchmarks use it. ``delete_topology`` removes what a run left on the shared broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
XSD_DIR = ROOT / "xsd"
SERVE = (sys.executable, "-m", "gateway", "serve")


def http_push_party(
    url: str,
    *,
    timeout_seconds: float = 10.0,
    breaker_failures: int = 5,
    breaker_reset_seconds: float = 30.0,
    sign_on_behalf: bool = True,
    status_url: str | None = None,
) -> str:
    """The TOML body of a party delivered by ``http-push`` to ``url`` (for ``parties_config``)."""
    status = f', status_url = "{status_url}"' if status_url else ""
    return (
        f'adapter = "http-push"\nsign_on_behalf = {str(sign_on_behalf).lower()}\n'
        f'options = {{ url = "{url}", timeout_seconds = "{timeout_seconds:g}", '
        f'breaker_failures = "{breaker_failures}", '
        f'breaker_reset_seconds = "{breaker_reset_seconds:g}"{status} }}\n'
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``asw-gateway serve`` in its own process group: start, readiness, log, stop."""

    port: int
    process: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the process writes its log."""
        raise NotImplementedError

    def launch(
        self,
        config: Path,
        *,
        timeout: float,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        cpus: Sequence[int] = (),
    ) -> None:
        """Start ``serve --config config`` and wait until it is ready to accept.

        ``cpus``: confine the whole gateway (every process and thread) to these CPUs from its
        first instruction, as a container's cpuset or ``taskset -c`` would (util-linux).
        """
        command: Sequence[str] = [*SERVE, "--config", str(config)]
        if cpus:
            command = ["taskset", "--cpu-list", ",".join(map(str, cpus)), *command]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
                command,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        """Wait until ready, or fail with the end of the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"gateway ({self.log_path.name}) not ready; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the gateway's log."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def children(self) -> list[int]:
        """Pids of the worker processes of a multi-worker gateway."""
        if self.process is None:
            raise RuntimeError("the gateway was not started")
        pgrep = ["pgrep", "-P", str(self.process.pid)]  # Debian's procps, found on PATH
        result = subprocess.run(pgrep, capture_output=True, text=True, check=False)  # noqa: S603
        pids = [int(p) for p in result.stdout.split()]
        # multiprocessing's spawn adds a resource tracker child; workers run gateway code.
        return [p for p in pids if "resource_tracker" not in _cmdline(p)]

    def kill_hard(self) -> None:
        """kill -9 the whole process group, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then hard if it does not stop within 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_hard()


@dataclass
class GatewayProcess(ServeProcess):
    """A gateway started with ``asw-gateway serve`` in its own process group.

    Every party is served through a drop folder unless ``parties_config`` gives the TOML body of
    its ``[parties.<CC>]`` table (see ``http_push_party``). ``retry_schedule``,
    ``lease_seconds``, ``delivery_limit``, ``poison_after``, ``prefetch`` and
    ``sweep_seconds`` go to the ``[amqp]`` and ``[journal]`` tables; ``None`` keeps the
    gateway's default. ``amqp_urls`` gives every node of a RabbitMQ cluster (``amqp.urls``).
    ``journal_url`` replaces the SQLite file in the work directory (two
    gateways given the same PostgreSQL journal and ``prefix`` are two nodes of one hub).
    """

    workdir: Path
    amqp_url: str
    pki_dir: Path
    workers: int = 1
    sign_on_behalf: bool = True
    extra_config: str = ""
    parties_config: Mapping[str, str] = field(default_factory=dict)
    retry_schedule: tuple[float, ...] = (0.5, 1.0)
    lease_seconds: float = 5.0
    delivery_limit: int | None = None
    poison_after: int | None = None
    prefetch: int | None = None
    sweep_seconds: float | None = None
    journal_url: str | None = None
    amqp_urls: tuple[str, ...] = ()
    confirm_timeout_seconds: float | None = None
    journal_extra: str = ""  # more lines of the [journal] table, e.g. "op_timeout_seconds = 2"
    amqp_extra: str = ""  # more lines of the [amqp] table
    node_extra: str = ""  # more lines of the [node] table
    cpus: tuple[int, ...] = ()  # confine the gateway to these CPUs (ServeProcess.launch)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the process writes its log."""
        return self.workdir / "gateway.log"

    @property
    def config_path(self) -> Path:
        """Where the generated configuration lives."""
        return self.workdir / "gateway.toml"

    def inbox(self, country: str) -> Path:
        """Drop folder of ``country``."""
        return self.workdir / "nsw" / country / "inbox"

    @property
    def retry_delays_ms(self) -> tuple[int, ...]:
        """The retry queues' delays, as the broker names them (for ``delete_topology``)."""
        return tuple(sorted({round(d * 1000) for d in self.retry_schedule}))

    def _party(self, country: str) -> str:
        body = self.parties_config.get(country)
        if body is None:
            body = (
                f'adapter = "drop-folder"\n'
                f"sign_on_behalf = {str(self.sign_on_behalf).lower()}\n"
                f'options = {{ directory = "{self.inbox(country)}" }}\n'
            )
        return f"[parties.{country}]\n{body}"

    def write_config(self) -> None:
        """Write a configuration serving all ten member states (drop folders by default)."""
        parties = "\n".join(self._party(cc) for cc in MEMBER_STATES)
        schedule = ", ".join(f"{d:g}" for d in self.retry_schedule)
        amqp = f"reconnect_seconds = 0.5\nretry_schedule_seconds = [{schedule}]\n"
        if self.amqp_urls:
            amqp += "urls = [" + ", ".join(f'"{u}"' for u in self.amqp_urls) + "]\n"
        if self.confirm_timeout_seconds is not None:
            amqp += f"confirm_timeout_seconds = {self.confirm_timeout_seconds:g}\n"
        if self.delivery_limit is not None:
            amqp += f"delivery_limit = {self.delivery_limit}\n"
        if self.poison_after is not None:
            amqp += f"poison_after = {self.poison_after}\n"
        if self.prefetch is not None:
            amqp += f"prefetch = {self.prefetch}\n"
        if self.amqp_extra:
            amqp += self.amqp_extra.rstrip("\n") + "\n"
        journal_url = self.journal_url or f"sqlite://{self.workdir / 'journal.db'}"
        journal = f"lease_seconds = {self.lease_seconds:g}\n"
        if self.sweep_seconds is not None:
            journal += f"sweep_seconds = {self.sweep_seconds:g}\n"
        if self.journal_extra:
            journal += self.journal_extra.rstrip("\n") + "\n"
        self.config_path.write_text(
            f"[node]\nworkers = {self.workers}\n{self.node_extra.rstrip()}\n"
            f'[http]\nport = {self.port}\nauth = "none"\n'
            f'[amqp]\nurl = "{self.amqp_url}"\nprefix = "{self.prefix}"\n{amqp}'
            f'[documents]\nxsd_dir = "{XSD_DIR}"\n'
            f'[pki]\ntrust_dir = "{self.pki_dir}"\nkeys_dir = "{self.pki_dir}"\n'
            f'[journal]\nurl = "{journal_url}"\n{journal}'
            f'[log]\nformat = "json"\n{self.extra_config}\n{parties}',
            encoding="utf-8",
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the gateway and wait until it is ready to accept."""
        if not self.config_path.exists():
            self.write_config()
        self.launch(self.config_path, timeout=timeout, cpus=self.cpus)


@dataclass
class ConfiguredGateway(ServeProcess):
    """``asw-gateway serve --config <config>`` on a committed configuration.

    What differs per test run (ports, broker prefix, PKI directory, peer URLs, key digests) is
    overridden through ``ASW_*`` environment variables. Relative paths in the configuration
    land under ``workdir``, the process's working directory.
    """

    name: str
    config: Path
    workdir: Path
    amqp_url: str
    pki_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the process writes its log."""
        return self.workdir / f"{self.name}.log"

    def environment(self) -> dict[str, str]:
        """The process environment: ours, minus other ASW_ settings, plus the overrides."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("ASW_")}
        return {
            **base,
            "PYTHONPATH": str(ROOT),
            "ASW_HTTP__PORT": str(self.port),
            "ASW_AMQP__URL": self.amqp_url,
            "ASW_AMQP__PREFIX": self.prefix,
            "ASW_AMQP__RETRY_SCHEDULE_SECONDS": "0.5,1",
            "ASW_AMQP__RECONNECT_SECONDS": "0.5",
            "ASW_DOCUMENTS__XSD_DIR": str(XSD_DIR),
            "ASW_PKI__TRUST_DIR": str(self.pki_dir),
            "ASW_PKI__KEYS_DIR": str(self.pki_dir),
            "ASW_JOURNAL__LEASE_SECONDS": "5",
            **self.env,
        }

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until /readyz answers 200."""
        # The SQLite journal does not make its folder (var/federation/<name>/): the operator
        # does, as config/federation/make-keys.sh does.
        (self.workdir / "var" / "federation" / self.name).mkdir(parents=True, exist_ok=True)
        self.launch(self.config, timeout=timeout, cwd=self.workdir, env=self.environment())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def delete_topology(
    amqp_url: str,
    topology: Topology,
    countries: tuple[str, ...],
    retry_delays_ms: tuple[int, ...] = (),
) -> None:
    """Remove a test's queues and exchanges from the shared broker."""
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except CONNECTION_EXCEPTIONS:
        return
    async with connection:
        channel = await connection.channel()
        queues = [topology.delivery_queue(c) for c in countries] + [topology.dead_queue]
        queues.append(topology.identity_queue)
        queues += [topology.retry_queue(d) for d in retry_delays_ms]
        for name in queues:
            await channel.queue_delete(name)
        for name in (topology.route_exchange, topology.dead_exchange, topology.retry_exchange):
            await channel.exchange_delete(name)
