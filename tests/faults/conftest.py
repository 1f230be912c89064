"""Fixtures of the fault-injection scenarios: gateway processes cleaned up, summary lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from asw_toolkit.processes import GatewayProcess
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import delete_topology, show_summary
from tests.faults.harness import Summary
from tests.pki_fixtures import PkiBundle

GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture(autouse=True)
def _quiet_simulator() -> Iterator[None]:
    """Keep the in-process NSW simulator from logging every document it receives."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


@pytest.fixture
def gateway_factory(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Iterator[GatewayFactory]:
    """Build ``GatewayProcess``es (not started); each is stopped and its topology deleted.

    ``amqp_url=`` (and ``amqp_urls=``) aim a gateway at a private RabbitMQ instead of the shared
    one; its topology goes with that broker.
    """
    made: list[GatewayProcess] = []

    def make(**options: Any) -> GatewayProcess:
        workdir = tmp_path / f"gateway-{len(made)}"
        workdir.mkdir()
        options.setdefault("amqp_url", amqp_url)
        gateway = GatewayProcess(workdir=workdir, pki_dir=rsa_pki.directory, **options)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.stop()
        if gateway.amqp_url != amqp_url:
            continue  # a private broker of the test's own, removed with it
        asyncio.run(
            delete_topology(
                amqp_url, Topology(gateway.prefix), MEMBER_STATES, gateway.retry_delays_ms
            )
        )


@pytest.fixture
def report(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Callable[[Summary], None]:
    """Show a scenario's summary line, also at the end of the run (``show_summary``)."""

    def emit(summary: Summary) -> None:
        show_summary(request.node, capsys, summary.line())

    return emit
