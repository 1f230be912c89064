"""Operator actions on messages: replaying and discarding dead letters, with who and why.

Every action goes through ``record_operator_action``, the one call site where an operator's
act is recorded: a structured log line, and a row of the journal's append-only audit log
(``audit_log``, issue 16 §7) when given the journal.

A discard moves DEAD -> DISCARDED (the entry, timeline and payload stay for audit until
retention) and takes the parked copy out of the dead-letter queue.

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
from gateway.errors import (
    DiscardRefused,
    GatewayError,
    NotFound,
    ReplayReasonMissing,
    ReplayRefused,
)
from gateway.journal import AuditEntry, Journal, audit_of
from gateway.submission import Submissions, outgoing

log = structlog.get_logger("gateway.replay")

REPLAY_PREFIX = "replayed by "
DISCARD_PREFIX = "discarded by "


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorAction:
    """One act of an operator on a message: who (as the auth layer knows them), what, why."""

    action: str
    """``replay``, ``discard``, ``replay-preview`` or ``retention-purge``."""
    operator: str
    """The name the operator gave."""
    credential: str | None
    """How the request proved itself (``operator-key:<key id>``, ``party:SG``), or None."""
    target: str
    """A message id, or a description of the set acted on."""
    reason: str
    outcome: str
    role: str | None = None
    """The operator key's role (``gateway.operators.ROLES``), when a named key was used."""


async def record_operator_action(
    act: OperatorAction, *, journal: object | None = None, at: datetime | None = None
) -> None:
    """Record an operator's act: one log line (``operator_action``, never the payload) and,
    with ``journal`` and ``at``, a row of its audit log (who, role, credential, what, why)."""
    log.info(
        "operator_action",
        action=act.action,
        operator=act.operator,
        credential=act.credential,
        target=act.target,
        reason=act.reason,
        outcome=act.outcome,
    )
    if journal is None or at is None:
        return
    await audit_of(journal).audit_append(
        AuditEntry(
            at=at,
            actor=act.operator,
            role=act.role,
            key_id=act.credential,
            action=act.action,
            target=act.target[:500],
            reason=act.reason[:1000] or None,
            detail=act.outcome,
        )
    )


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

    async def discard(
        self,
        message_id: str,
        *,
        reason: str,
        operator: str,
        credential: str | None = None,
        role: str | None = None,
    ) -> bool:
        """Give up on a dead letter: DEAD -> DISCARDED, parked copy removed; raises otherwise.

        Returns whether the parked copy was found and removed from the dead-letter queue.
        """
        reason, operator = reason.strip(), operator.strip()
        if not reason or not operator:
            raise ReplayReasonMissing("A discard needs the operator's name and a reason.")
        view = await self._journal.get(message_id)
        if view is None:
            raise NotFound(f"No message {message_id} is known to this gateway.")
        if view.summary.state is not MessageState.DEAD:
            raise DiscardRefused(
                f"Message {message_id} is {view.summary.state.value}, not DEAD; only dead "
                "letters can be discarded."
            )
        await self._journal.transition(
            message_id,
            MessageState.DISCARDED,
            at=self._clock(),
            detail=f"{DISCARD_PREFIX}{operator}: {reason}"[:500],
        )
        try:
            removed = await self._broker.remove_parked(message_id)
        except GatewayError as exc:
            log.warning("parked_copy_not_removed", message_id=message_id, error=exc.code)
            removed = False
        await record_operator_action(
            OperatorAction(
                action="discard",
                operator=operator,
                credential=credential,
                target=message_id,
                reason=reason,
                outcome="discarded",
                role=role,
            ),
            journal=self._journal,
            at=self._clock(),
        )
        return removed

    async def replay(
        self,
        message_id: str,
        *,
        reason: str,
        operator: str,
        credential: str | None = None,
        role: str | None = None,
    ) -> Replayed:
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
        await record_operator_action(
            OperatorAction(
                action="replay",
                operator=operator,
                credential=credential,
                target=message_id,
                reason=reason,
                outcome=f"queued (replay {replays})",
                role=role,
            ),
            journal=self._journal,
            at=self._clock(),
        )
        return Replayed(
            message_id=message_id,
            state=MessageState.QUEUED,
            replays=replays,
            parked_copy_removed=removed,
        )
