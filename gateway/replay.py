"""Operator actions on messages: replaying dead letters, with who, why and how often.

A replay moves the journal state DEAD -> QUEUED (the timeline row names the operator and the
reason), publishes the stored payload again on its original route, and takes the parked copy
out of the dead-letter queue. The delivery claim keeps a replayed message from reaching its
receiver twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from gateway.broker import Broker
from gateway.core.envelope import read_envelope
from gateway.core.parsing import parse
from gateway.core.states import MessageState
from gateway.errors import GatewayError, NotFound, ReplayReasonMissing, ReplayRefused
from gateway.journal import Journal
from gateway.submission import Submissions, outgoing

log = structlog.get_logger("gateway.replay")

REPLAY_PREFIX = "replayed by "


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    """The outcome of one replay."""

    message_id: str
    state: MessageState
    replays: int
    parked_copy_removed: bool


class DeadLetterReplay:
    """What operators may do to messages."""

    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        submissions: Submissions,
        clock: Callable[[], datetime],
    ) -> None:
        self._journal = journal
        self._broker = broker
        self._submissions = submissions
        self._clock = clock

    async def replay(self, message_id: str, *, reason: str, operator: str) -> Replayed:
        """Send a dead letter on its way again; raises if it is unknown or not DEAD."""
        reason, operator = reason.strip(), operator.strip()
        if not reason or not operator:
            raise ReplayReasonMissing("A replay needs the operator's name and a reason.")
        view = await self._journal.get(message_id)
        payload = await self._journal.payload(message_id)
        if view is None or payload is None:
            raise NotFound(f"No message {message_id} is known to this gateway.")
        if view.summary.state is not MessageState.DEAD:
            raise ReplayRefused(
                f"Message {message_id} is {view.summary.state.value}, not DEAD; only dead "
                "letters can be replayed."
            )
        envelope = read_envelope(parse(payload, self._submissions.ingest.limits))
        route = self._submissions.ingest.routes.decide(envelope)
        await self._journal.transition(
            message_id,
            MessageState.QUEUED,
            at=self._clock(),
            detail=f"{REPLAY_PREFIX}{operator}: {reason}"[:500],
        )
        replays = 1 + sum(
            1 for c in view.timeline if c.detail and c.detail.startswith(REPLAY_PREFIX)
        )
        await self._broker.publish(
            outgoing(
                envelope,
                route,
                payload,
                digest=view.summary.record.digest,
                channel="replay",
                replays=replays,
            )
        )
        try:
            removed = await self._broker.remove_parked(message_id)
        except GatewayError as exc:
            log.warning("parked_copy_not_removed", message_id=message_id, error=exc.code)
            removed = False
        log.info(
            "message_replayed",
            message_id=message_id,
            operator=operator,
            replays=replays,
            outcome="queued",
        )
        return Replayed(
            message_id=message_id,
            state=MessageState.QUEUED,
            replays=replays,
            parked_copy_removed=removed,
        )
