"""Issue 15 §5: a three-node RabbitMQ cluster loses the node that leads the busiest queue.

A private cluster of three nodes (``tests.faults.private_rabbitmq``: own node names, ports, data
folders, cookie and epmd) carries the gateway's quorum queues, and the gateway is given every
node's address (``amqp.urls``). Mid-load, the node leading the busiest of the gateway's queues
is killed with ``kill -9``; the gateway has to find another node by itself (the quorum queues
elect new leaders there), and the node is started again afterwards and rejoins. The sender
resends every 503 under the same message id until it is accepted; every accepted message must
reach the NSW exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from asw_toolkit.processes import GatewayProcess, http_push_party
from tests.conftest import CPU_HEAVY
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    CRASH_LEASE_SECONDS,
    CRASH_RETRY_SCHEDULE,
    Load,
    NswThread,
    Summary,
    documents,
    gateway_json,
    nsw_stats,
    send_until_accepted,
    settle,
    wait_arrivals,
    wait_until,
)
from tests.faults.private_rabbitmq import PrivateRabbit, private_rabbit

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, CPU_HEAVY]

MESSAGES = 800
KILL_AFTER_ACCEPTED = 250
"""The kill comes while the sender is still submitting and the NSW still receiving."""


def connected_ports(gateway: GatewayProcess) -> list[int]:
    """The AMQP port of every ``broker_connected`` line in the gateway's log, in order."""
    ports = []
    path = gateway.workdir / "gateway.log"
    for line in path.read_text(errors="replace").splitlines():
        if '"broker_connected"' not in line:
            continue
        try:
            url = str(json.loads(line).get("url", ""))
        except ValueError:
            continue
        ports.append(int(url.rstrip("/").rsplit(":", 1)[1]))
    return ports


def queue_leaders(rabbit: PrivateRabbit, prefix: str) -> dict[str, str]:
    """Leader node of each of the gateway's queues (asked before the load: the CLI is slow)."""
    leaders = {
        name: leader
        for name, (leader, _) in rabbit.queue_leaders().items()
        if name.startswith(prefix + ".")
    }
    assert leaders, "the gateway's queues are not on the cluster"
    return leaders


async def busiest_queue(gateway_url: str) -> tuple[str, int]:
    """The gateway's queue holding the most messages right now (``GET /v1/queues``)."""
    body = await gateway_json(gateway_url, "/v1/queues")
    depths = {str(k): int(v) for k, v in body["queues"].items()}
    name = max(depths, key=lambda n: (depths[n], n.endswith(".deliver.TH")))
    return name, depths[name]


async def test_cluster_node_leading_the_busiest_queue_killed_mid_load_loses_nothing(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """kill -9 of the leader node: the gateway moves to another node, every message once."""
    with private_rabbit(3) as rabbit, NswThread("TH") as nsw:
        begun = time.monotonic()
        gateway = gateway_factory(
            amqp_url=rabbit.urls[0],
            amqp_urls=tuple(rabbit.urls),
            workers=2,
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=10)},
            lease_seconds=CRASH_LEASE_SECONDS,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start, 60)
        leaders = await asyncio.to_thread(queue_leaders, rabbit, gateway.prefix)
        # Declared with x-queue-leader-locator: balanced, the leaders spread over the nodes.
        leader_nodes = len(set(leaders.values()))
        assert leader_nodes >= 2, leaders
        busy = rabbit.node_of(leaders[f"{gateway.prefix}.deliver.TH"])
        if busy.url != gateway.amqp_url:
            # Have the gateway on the node that leads the queue under load, so that killing
            # that node also makes the gateway move (it keeps its queues, leaders and journal).
            await asyncio.to_thread(gateway.stop)
            gateway.amqp_url = busy.url
            gateway.amqp_urls = (busy.url, *(u for u in rabbit.urls if u != busy.url))
            await asyncio.to_thread(gateway.write_config)
            await asyncio.to_thread(gateway.start, 60)
        load = Load()
        sender = asyncio.create_task(
            send_until_accepted(
                gateway.url, documents(MESSAGES), load=load, concurrency=32, deadline=begun + 150
            )
        )

        async def under_way() -> bool:
            return len(load.accepted) >= KILL_AFTER_ACCEPTED

        assert await wait_until(under_way, timeout=60, every=0.02), gateway.log_tail()
        assert await wait_arrivals(nsw, 1, timeout=30, every=0.02), gateway.log_tail()
        queue, held = await busiest_queue(gateway.url)
        victim = rabbit.node_of(leaders[queue])
        connections_before = len(connected_ports(gateway))
        assert victim.amqp_port in connected_ports(gateway), "the gateway was not on that node"
        at_kill = {
            "killed": victim.name.rsplit("-", 1)[1],
            "leader_nodes": leader_nodes,
            "busiest_queue": queue.removeprefix(gateway.prefix + "."),
            "held_at_kill": held,
            "accepted_at_kill": len(load.accepted),
            "delivered_at_kill": len(set(nsw.simulator.received)),
        }
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill_hard)

        async def moved_to_another_node() -> bool:
            ports = connected_ports(gateway)[connections_before:]
            return gateway.ready() and any(p != victim.amqp_port for p in ports)

        moved = await wait_until(moved_to_another_node, timeout=60, every=0.1)
        reconnected_in = round(time.monotonic() - killed_at, 1)
        assert moved, f"the gateway did not move to another node:\n{gateway.log_tail()}"
        new_leader = (await asyncio.to_thread(rabbit.queue_leaders))[queue][0]
        assert new_leader != victim.node, "the quorum queue did not elect a new leader"
        # Load goes on with the node down for a while, then it comes back and rejoins.
        await asyncio.sleep(5)
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(victim.await_startup)
        await sender
        assert not load.not_accepted, (load.refused_for_good, load.refusals)
        missing, arrivals = await settle(nsw.url, gateway.url, load.accepted, timeout=90)
        stats = await nsw_stats(nsw.url)
        summary = Summary.count(
            "cluster-leader-kill",
            load,
            arrivals,
            extra={
                **at_kill,
                "reconnected_s": reconnected_in,
                "refused_503": load.refusals["503"],
                "resent": sum(load.refusals.values()),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
        members = await asyncio.to_thread(victim.ctl, "cluster_status", "--formatter", "json")
    assert victim.node in json.loads(members)["running_nodes"], "the node did not rejoin"
    assert not missing, f"{len(missing)} accepted messages never reached the NSW"
    assert summary.lost == 0
    assert summary.duplicates == 0, stats["duplicated_message_ids"]
