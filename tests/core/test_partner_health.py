"""Partner health is judged from delivery outcomes, not from the breaker alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.core.partner_health import PartnerFacts, judge

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
QUIET = PartnerFacts(
    delivered=0,
    failed=0,
    breaker="closed",
    broker_up=True,
    queue_depth=0,
    oldest_waiting=None,
    adapter_reachable=True,
)


def test_a_partner_that_refused_everything_is_not_healthy() -> None:
    """13 attempts, 13 refused, breaker still closed: failing, not healthy."""
    health = judge(replace(QUIET, failed=13), now=NOW)
    assert (health.status, health.healthy, health.success_rate) == ("failing", False, 0.0)


def test_nobody_is_healthy_while_the_broker_is_down() -> None:
    """Even a partner with only successes is not healthy when the broker is unreachable."""
    health = judge(replace(QUIET, delivered=50, broker_up=False, queue_depth=None), now=NOW)
    assert (health.status, health.healthy) == ("broker-down", False)


def test_succeeding_deliveries_are_healthy_and_a_few_failures_degrade() -> None:
    """95% success is healthy; 50% is degraded; an open breaker overrides both."""
    assert judge(replace(QUIET, delivered=19, failed=1), now=NOW).status == "healthy"
    degraded = judge(replace(QUIET, delivered=5, failed=5), now=NOW)
    assert (degraded.status, degraded.healthy, degraded.success_rate) == ("degraded", False, 0.5)
    assert judge(replace(QUIET, delivered=19, breaker="open"), now=NOW).status == "breaker-open"


def test_waiting_without_deliveries_is_a_stall_and_quiet_is_idle() -> None:
    """Old waiting documents and no outcome: stalled; nothing at all: idle (healthy)."""
    stalled = judge(replace(QUIET, oldest_waiting=NOW - timedelta(minutes=30)), now=NOW)
    assert (stalled.status, stalled.healthy) == ("stalled", False)
    assert judge(QUIET, now=NOW).healthy is True
    assert judge(replace(QUIET, adapter_reachable=False), now=NOW).status == "unreachable"
