"""RabbitMQ nodes of the test's own: one node, or a cluster of three, on this machine.

The shared node (``rabbit@localhost`` on 5672) is never touched: every private node has its own
node name (``asw-test-<run>-<n>@localhost``), AMQP and distribution ports, data and log folders
under one temporary folder, its own Erlang cookie (a ``HOME`` of its own holding
``.erlang.cookie``) and its own ``epmd`` on a port of its own (``ERL_EPMD_PORT``), so that
neither the node names nor the cookie are visible to the shared node. The management plugin is
off (an empty enabled-plugins file). ``/etc/rabbitmq/rabbitmq-env.conf`` is not read (an env
file of our own replaces it).

Every process is started here as a child (``rabbitmq-server`` in a process group of its own,
``epmd`` in the foreground) and stopped by its pid: ``rabbitmqctl -n <node> stop`` first, then
``SIGKILL`` to the process group if it is still there. ``kill_hard`` is the ``kill -9`` of a fault
scenario. ``remove`` stops everything and deletes the folder.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asw_toolkit.processes import free_port

SBIN = Path("/usr/lib/rabbitmq/bin")
EPMD_CANDIDATES = ("/usr/lib/erlang/erts-*/bin/epmd", "/usr/lib/erlang/bin/epmd")
START_TIMEOUT = 120.0


def _epmd_binary() -> str:
    import glob

    for pattern in EPMD_CANDIDATES:
        found = sorted(glob.glob(pattern))
        if found:
            return found[-1]
    which = shutil.which("epmd")
    if which is None:
        raise RuntimeError("no epmd binary found (Erlang is not installed?)")
    return which


def _script(name: str) -> str:
    path = SBIN / name
    if path.exists():
        return str(path)
    which = shutil.which(name)
    if which is None:
        raise RuntimeError(f"{name} not found; is RabbitMQ installed?")
    return which


def _free_port_in(low: int, high: int) -> int:
    """A free port in [low, high): the CLI tools talk from the distribution port + 10000."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(low, high)  # noqa: S311  # not for security
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def _raise_fd_limit() -> None:
    """In the child: lift the open-file soft limit to the hard limit (RabbitMQ wants many)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class PrivateNode:
    """One private RabbitMQ node; ``url`` reaches it as guest/guest."""

    name: str
    base: Path
    home: Path
    epmd_port: int
    env_file: Path
    plugins_file: Path
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=lambda: _free_port_in(20000, 30000))
    process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        """The Erlang node name, e.g. ``asw-test-1a2b-1@localhost``."""
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        """AMQP URL of this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def folder(self) -> Path:
        """This node's data and logs."""
        return self.base / self.name

    def environment(self) -> dict[str, str]:
        """The environment of this node's server and of ``rabbitmqctl`` aimed at it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.home),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(self.env_file),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.folder / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.folder / "advanced.config"),
            RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.folder / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.plugins_file),
            RABBITMQ_PID_FILE=str(self.folder / "node.pid"),
            RABBITMQ_SERVER_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            # Two cores shared by many: keep the schedulers few.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 2:2 +A 8",
            LC_ALL="C.UTF-8",
            LANG="C.UTF-8",
        )
        return env

    def start(self) -> None:
        """Start ``rabbitmq-server`` as a child in its own process group (not waiting)."""
        (self.folder / "log").mkdir(parents=True, exist_ok=True)
        (self.folder / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n",
            encoding="utf-8",
        )
        with (self.folder / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                [_script("rabbitmq-server")],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
                start_new_session=True,
                preexec_fn=_raise_fd_limit,  # noqa: PLW1509  # setrlimit only, no threads yet
            )

    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run ``rabbitmqctl -n <this node> args...``; its standard output."""
        return self._cli("rabbitmqctl", *args, timeout=timeout, check=check)

    def queues_cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmq-queues -n <this node> args...``; its standard output."""
        return self._cli("rabbitmq-queues", *args, timeout=timeout)

    def _cli(self, tool: str, *args: str, timeout: float, check: bool = True) -> str:
        done = subprocess.run(
            [_script(tool), "-n", self.node, *args],
            env=self.environment(),
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=self.folder,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{tool} -n {self.node} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-2000:]}"
            )
        return done.stdout.decode(errors="replace")

    def await_startup(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the node has fully booted (``rabbitmqctl await_startup``)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"{self.node} exited ({code}):\n{self.tail()}")
            done = subprocess.run(
                [_script("rabbitmqctl"), "-n", self.node, "await_startup", "--timeout", "10"],
                env=self.environment(),
                capture_output=True,
                timeout=60,
                check=False,
                cwd=self.folder,
            )
            if done.returncode == 0:
                return
            last = done.stderr.decode(errors="replace")[-500:]
            time.sleep(0.5)
        raise RuntimeError(f"{self.node} did not start in {timeout:g} s: {last}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The end of the node's console output and log file."""
        parts = []
        for path in (self.folder / "server.out", *sorted((self.folder / "log").glob("*.log"))):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    @property
    def running(self) -> bool:
        """True while the server process started here is alive."""
        return self.process is not None and self.process.poll() is None

    def kill_hard(self) -> None:
        """``kill -9`` the node (its whole process group), as a crash would."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the node: ``rabbitmqctl stop``, then SIGKILL to its group if still alive."""
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired, RuntimeError):
            self.ctl("stop", timeout=60, check=False)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_hard()
        # the server's shell wrapper may leave beam behind when the wrapper itself exits
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


class PrivateRabbit:
    """A private RabbitMQ of ``size`` nodes (clustered when more than one), with its own epmd."""

    def __init__(self, size: int = 1) -> None:
        """Pick names, ports and folders; ``start`` starts the nodes and forms the cluster."""
        self.base = Path(tempfile.mkdtemp(prefix="asw-private-rabbit-"))
        run = secrets.token_hex(3)
        self.home = self.base / "home"
        self.home.mkdir()
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper(), encoding="ascii")
        cookie.chmod(0o400)
        self.env_file = self.base / "rabbitmq-env.conf"
        self.env_file.write_text("# private test node: nothing from /etc/rabbitmq\n")
        self.plugins_file = self.base / "enabled_plugins"
        self.plugins_file.write_text("[].\n")
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        self.nodes = [
            PrivateNode(
                name=f"asw-test-{run}-{n}",
                base=self.base,
                home=self.home,
                epmd_port=self.epmd_port,
                env_file=self.env_file,
                plugins_file=self.plugins_file,
            )
            for n in range(1, size + 1)
        ]

    @property
    def urls(self) -> list[str]:
        """Every node's AMQP URL, in node order."""
        return [node.url for node in self.nodes]

    def start(self) -> None:
        """Start epmd and every node, wait until each has booted, then join them into one."""
        env = self.nodes[0].environment()
        self.epmd = subprocess.Popen(
            [_epmd_binary(), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(0.3)
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.await_startup()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node, timeout=120)
            node.ctl("start_app", timeout=120)
            node.await_startup()

    def node_of(self, erlang_node: str) -> PrivateNode:
        """The node whose Erlang name is ``erlang_node``."""
        for node in self.nodes:
            if node.node == erlang_node:
                return node
        raise KeyError(erlang_node)

    def alive(self) -> PrivateNode:
        """Some running node (to ask about the cluster)."""
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no private RabbitMQ node is running")

    def queue_leaders(self) -> dict[str, tuple[str, int]]:
        """Per queue: (leader node, ready + unacked messages), from ``rabbitmqctl list_queues``."""
        out = self.alive().ctl(
            "list_queues", "name", "leader", "messages", "--no-table-headers", "--quiet"
        )
        leaders: dict[str, tuple[str, int]] = {}
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[2].strip().isdigit():
                leaders[fields[0]] = (fields[1].strip(), int(fields[2]))
        return leaders

    def stop(self) -> None:
        """Stop every node (by its own pid) and epmd."""
        for node in reversed(self.nodes):
            node.stop()
        if self.epmd is not None and self.epmd.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.epmd.pid, signal.SIGKILL)
            self.epmd.wait(timeout=10)

    def remove(self) -> None:
        """Stop everything and delete the folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def private_rabbit(size: int = 1) -> Iterator[PrivateRabbit]:
    """A started private RabbitMQ (one node, or a cluster of ``size``), removed afterwards."""
    rabbit = PrivateRabbit(size)
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.remove()
