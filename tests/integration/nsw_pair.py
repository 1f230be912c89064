"""A gateway whose TH and SG parties are simulated NSWs (real HTTP servers) over http-push,
with an injected clock: the pair the origin conversation tests play between."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asw_toolkit.simulator import RunningSimulator, SimulatorConfig, find_response_template
from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.settings import PartySettings
from tests.conftest import ROOT, delete_topology, make_settings
from tests.integration.helpers import base_url
from tests.pki_fixtures import PkiBundle


@dataclass
class Clock:
    """The gateway's clock: the real time moved on by ``offset`` (tests let days pass)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass(frozen=True, slots=True)
class Setup:
    """A gateway whose TH and SG parties are simulated NSWs reached over http-push."""

    gateway: Gateway
    nsw_th: RunningSimulator
    nsw_sg: RunningSimulator
    clock: Clock


@pytest.fixture
async def nsw_pair(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> AsyncIterator[Setup]:
    """Start both simulated NSWs, then a gateway delivering to them."""
    template = find_response_template((ROOT,))
    assert template is not None
    nsw_th = RunningSimulator(SimulatorConfig(country="TH"))
    await nsw_th.start()
    gateway: Gateway | None = None
    nsw_sg: RunningSimulator | None = None
    prefix = f"test-rtr-{uuid.uuid4().hex[:8]}"
    try:
        base = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
        # The gateway's port is known only after start: SG's NSW learns it afterwards.
        nsw_sg = RunningSimulator(
            SimulatorConfig(
                country="SG",
                respond_to="http://127.0.0.1:1",
                response_template=template.read_bytes(),
                respond_delay_seconds=0.1,
            )
        )
        await nsw_sg.start()
        parties = dict(base.parties)
        for country, nsw in (("TH", nsw_th), ("SG", nsw_sg)):
            parties[country] = PartySettings(
                country=country,
                adapter="http-push",
                options={"url": nsw.documents_url},
                sign_on_behalf=True,
            )
        clock = Clock()
        gateway = Gateway(dataclasses.replace(base, parties=parties), clock=clock)
        await gateway.start(port=0)
        assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
        nsw_sg.simulator.config = dataclasses.replace(
            nsw_sg.simulator.config, respond_to=base_url(gateway)
        )
        yield Setup(gateway=gateway, nsw_th=nsw_th, nsw_sg=nsw_sg, clock=clock)
    finally:
        if gateway is not None:
            await gateway.stop()
            await delete_topology(
                amqp_url, Topology(prefix), MEMBER_STATES, gateway.broker.retry_delays_ms
            )
        if nsw_sg is not None:
            await nsw_sg.stop()
        await nsw_th.stop()
