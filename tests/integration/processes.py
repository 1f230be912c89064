"""Run the real ``asw-gateway serve`` as a child process, for process-level tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.envelope import MEMBER_STATES

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProcess:
    """A gateway started with ``asw-gateway serve`` in its own process group."""

    workdir: Path
    amqp_url: str
    pki_dir: Path
    workers: int = 1
    sign_on_behalf: bool = True
    extra_config: str = ""
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where the generated configuration lives."""
        return self.workdir / "gateway.toml"

    def inbox(self, country: str) -> Path:
        """Drop folder of ``country``."""
        return self.workdir / "nsw" / country / "inbox"

    def write_config(self) -> None:
        """Write a configuration serving all ten member states through drop folders."""
        parties = "\n".join(
            f'[parties.{cc}]\nadapter = "drop-folder"\n'
            f"sign_on_behalf = {str(self.sign_on_behalf).lower()}\n"
            f'options = {{ directory = "{self.inbox(cc)}" }}\n'
            for cc in MEMBER_STATES
        )
        self.config_path.write_text(
            f"[node]\nworkers = {self.workers}\n"
            f"[http]\nport = {self.port}\n"
            f'[amqp]\nurl = "{self.amqp_url}"\nprefix = "{self.prefix}"\n'
            f"reconnect_seconds = 0.5\nretry_schedule_seconds = [0.5, 1]\n"
            f'[documents]\nxsd_dir = "{XSD_DIR}"\n'
            f'[pki]\ntrust_dir = "{self.pki_dir}"\nkeys_dir = "{self.pki_dir}"\n'
            f'[journal]\nurl = "sqlite://{self.workdir / "journal.db"}"\nlease_seconds = 5\n'
            f'[log]\nformat = "json"\n{self.extra_config}\n{parties}',
            encoding="utf-8",
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the gateway and wait until it is ready to accept."""
        if not self.config_path.exists():
            self.write_config()
        with (self.workdir / "gateway.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
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
        raise AssertionError(f"gateway not ready; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the gateway's log."""
        path = self.workdir / "gateway.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def children(self) -> list[int]:
        """Pids of the worker processes of a multi-worker gateway."""
        assert self.process is not None
        result = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        pids = [int(p) for p in result.stdout.split()]
        # multiprocessing's spawn adds a resource tracker child; workers run gateway code.
        return [p for p in pids if "resource_tracker" not in _cmdline(p)]

    def kill_hard(self) -> None:
        """kill -9 the whole process group, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then hard if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_hard()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
