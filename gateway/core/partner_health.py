"""Whether a receiving partner is healthy, judged from what its deliveries did.

"Healthy" means deliveries to the partner are succeeding, not that nothing has failed yet: a
partner that refused every document, whose breaker is open, or whose documents wait with no
success is not healthy, and neither is any partner while the broker is down (nothing can be
delivered). Pure: the shell gathers the facts (journal outcomes, breaker, queue depth, oldest
waiting message, the adapter's own check) and this module judges.

Statuses, worst first:

    broker-down   the broker cannot be reached: nothing is being delivered to anyone
    breaker-open  the circuit breaker stopped calls to the partner after repeated failures
    failing       attempts in the window, none succeeded
    stalled       no attempt ended in the window, but documents have waited longer than
                  ``STALL_AFTER``
    degraded      some attempts succeeded, but fewer than ``HEALTHY_RATE``
    unreachable   no traffic in the window and the adapter's own check fails
    healthy       at least ``HEALTHY_RATE`` of the attempts in the window succeeded
    idle          no traffic in the window, nothing waiting, the adapter's check passes
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

HEALTHY_RATE = 0.9
"""Share of delivery attempts in the window that must succeed for "healthy"."""
STALL_AFTER = timedelta(minutes=5)
"""A waiting document older than this, with no delivery ending in the window, is a stall."""

HEALTHY_STATUSES = frozenset({"healthy", "idle"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerFacts:
    """What is known about one partner at one moment."""

    delivered: int
    failed: int
    breaker: str | None  # "closed", "open", "half-open"; None when the adapter has none
    broker_up: bool
    queue_depth: int | None  # None when the broker could not be asked
    oldest_waiting: datetime | None
    adapter_reachable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerHealth:
    """The judgement: a status, whether that counts as healthy, the success rate and why."""

    status: str
    healthy: bool
    success_rate: float | None
    reason: str


def judge(facts: PartnerFacts, *, now: datetime) -> PartnerHealth:
    """Judge one partner from its facts: the first rule that applies, worst first."""
    attempts = facts.delivered + facts.failed
    rate = facts.delivered / attempts if attempts else None
    waited = now - facts.oldest_waiting if facts.oldest_waiting is not None else None
    share = f"{facts.delivered} of {attempts} delivery attempts in the window succeeded"
    minutes = int(waited.total_seconds() // 60) if waited is not None else 0
    rules: tuple[tuple[bool, str, str], ...] = (
        (
            not facts.broker_up,
            "broker-down",
            "the message broker is unreachable: nothing is delivered",
        ),
        (
            facts.breaker == "open",
            "breaker-open",
            "the circuit breaker stopped calls after failures",
        ),
        (
            bool(attempts) and facts.delivered == 0,
            "failing",
            f"all {attempts} delivery attempts in the window failed",
        ),
        (
            not attempts and waited is not None and waited > STALL_AFTER,
            "stalled",
            f"documents have waited {minutes} min with no delivery",
        ),
        (rate is not None and rate < HEALTHY_RATE, "degraded", share),
        (rate is not None, "healthy", share),
        (
            not facts.adapter_reachable,
            "unreachable",
            "no deliveries in the window and the adapter check fails",
        ),
        (True, "idle", "no deliveries in the window; nothing waits; the adapter answers"),
    )
    status, reason = next((s, r) for applies, s, r in rules if applies)
    return PartnerHealth(
        status=status, healthy=status in HEALTHY_STATUSES, success_rate=rate, reason=reason
    )
