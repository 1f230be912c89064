"""Run a gateway process on a committed configuration (``config/federation/*.toml``).

The configuration is used as committed; what differs per test run (ports, broker prefix, PKI
directory, peer URLs, key digests) is overridden through ``ASW_*`` environment variables, the
way an operator would. Relative paths in the configuration land under ``workdir``, the
process's working directory. The process runs ``python -m gateway serve``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from asw_toolkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
XSD_DIR = ROOT / "xsd"
SERVE = (sys.executable, "-m", "gateway", "serve")


@dataclass
class ConfiguredGateway:
    """``asw-gateway serve --config <config>`` in its own process group."""

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
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

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
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*SERVE, "--config", str(self.config)],
                cwd=self.workdir,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} gateway not ready; log:\n{self.log_tail()}")

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group; SIGKILL if it does not stop within 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
