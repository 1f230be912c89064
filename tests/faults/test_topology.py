"""The deployment topology, as processes: two gateway nodes on one journal deliver, once each.

``scripts/topology`` starts what ``deploy/compose.yaml`` describes (RabbitMQ, PostgreSQL, two
gateway nodes, simulated NSWs) on this machine; here it runs briefly with ten Form Ds sent
through both nodes. The deployment files themselves are checked for what the runbook promises.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgresql, pytest.mark.slow]


def test_topology_script_runs_two_nodes_and_delivers_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """scripts/topology starts the topology, both nodes accept, every message arrives once."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "topology"), "--rabbit-nodes", "0", "--workers", "1",
         "--messages", "10", "--hold", "0"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if "nodes=2" in line]
    with capsys.disabled():
        print("\n" + "\n".join(summary))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary, done.stdout
    found = re.search(
        r"sent=(\d+) accepted=(\d+) delivered=(\d+) duplicates=(\d+) lost=(\d+)", summary[0]
    )
    assert found is not None
    assert found.groups() == ("10", "10", "10", "0", "0")


def test_deployment_files_say_what_the_runbook_promises() -> None:
    """Image non-root with a /readyz healthcheck; compose: 3 RabbitMQ nodes, PostgreSQL, two
    gateways on one journal, simulated NSWs, secrets from files."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users and all(not u.startswith(("root", "0")) for u in users[-1:])
    assert re.search(r"^HEALTHCHECK .*?/readyz", dockerfile, flags=re.MULTILINE)
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"rabbit-1", "rabbit-2", "rabbit-3", "postgres", "gateway-1", "gateway-2"} <= set(
        services
    )
    assert {s for s in services if s.startswith("nsw-")}
    for name in ("gateway-1", "gateway-2"):
        environment = services[name]["environment"]
        assert environment["ASW_JOURNAL__URL_FILE"].startswith("/run/secrets/")
        assert environment["ASW_AMQP__URLS_FILE"].startswith("/run/secrets/")
        assert any(v.endswith(":/etc/asw-gateway/pki:ro") for v in services[name]["volumes"])
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
