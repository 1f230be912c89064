"""The deployment topology, as processes: two gateway nodes on one journal deliver, once each.

``scripts/topology`` starts what ``deploy/compose.yaml`` describes on this machine: a private
three-node RabbitMQ cluster (never the shared broker), a private PostgreSQL journal, two gateway
nodes given every RabbitMQ node's address, simulated NSWs for SG and TH. Here it runs briefly
with ten Form Ds sent through both nodes. The deployment files themselves are checked for what
the runbook promises.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import CPU_HEAVY, show_summary

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgresql, pytest.mark.slow, CPU_HEAVY]

SUMMARY = re.compile(
    r"^scenario=topology-compose nodes=(\d+) rabbit=(\S+) sent=(\d+) accepted=(\d+) "
    r"delivered=(\d+) duplicates=(\d+) lost=(\d+) accepted_per_node=(\d+),(\d+) "
    r"queues=(\d+) quorum=(\d+) replicas=(\d+) leaders=(\d+) seconds=\S+$"
)


def _alive(kind: str, number: int) -> bool:
    """True while the process (``pid``) or any process of the group (``pgid``) still exists."""
    try:
        if kind == "pgid":
            os.killpg(number, 0)
        else:
            os.kill(number, 0)
    except ProcessLookupError:
        return False
    return True


def test_topology_script_runs_two_nodes_on_a_private_cluster_and_delivers_once(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/topology: 3-node private cluster, both nodes accept, every message arrives once."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "topology"), "--rabbit-nodes", "3", "--workers", "1",
         "--messages", "10", "--hold", "0"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if line.startswith("scenario=")]
    for line in summary:
        show_summary(request.node, capsys, line)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(summary) == 1, done.stdout
    found = SUMMARY.match(summary[0])
    assert found is not None, summary[0]
    nodes, rabbit, sent, accepted, delivered, duplicates, lost, first, second = found.groups()[:9]
    queues, quorum, replicas, leaders = (int(n) for n in found.groups()[9:])
    assert (nodes, rabbit) == ("2", "cluster-3")
    assert (sent, accepted, delivered, duplicates, lost) == ("10", "10", "10", "0", "0")
    assert (first, second) == ("5", "5")
    assert queues > 0 and quorum == queues
    assert replicas == 3  # every queue has a member on each node, as compose's initial size 3
    assert 1 <= leaders <= 3
    # the gateways were given the three private nodes, none of them the shared broker's 5672
    up = next(line for line in done.stdout.splitlines() if line.startswith("topology: up:"))
    ports = re.findall(r"amqp://guest:guest@127\.0\.0\.1:(\d+)/", up)
    assert len(ports) == 3 and "5672" not in ports, up
    # everything it started is gone: the script stopped its processes by pid
    stopped = next(
        line for line in done.stdout.splitlines() if line.startswith("topology: stopped")
    )
    ids = [(kind, int(n)) for kind, n in re.findall(r"(pgid|pid)=(\d+)", stopped)]
    assert len(ids) >= 2 + 2 + 1 + 3 + 1, stopped  # gateways, NSWs, postgres, rabbit nodes, epmd
    assert not [i for i in ids if _alive(*i)], stopped


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
