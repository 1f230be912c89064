"""The audit trail: who did what to which message, and who looked at which stored document.

``AuditTrail.record_operator_action`` is the one call site for operator actions (replay,
discard, bulk replay, retention runs, key changes); ``record_document_view`` is called by every
handler that serves a stored document. Both append to the journal's ``audit_log`` (append-only,
see ``gateway.journal.tables``) and write one log line. The actor is always taken from the
authenticated principal (the named operator key), never from the request body.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from gateway.auth import Principal
from gateway.journal import AuditEntry, AuditJournal

log = structlog.get_logger("gateway.audit")

MAX_TEXT = 1000
"""Longest reason or detail kept (characters); the rest is cut."""

DOCUMENT_VIEWED = "document-viewed"
REPLAY = "replay"
KEY_ADDED = "key-added"
KEY_REVOKED = "key-revoked"


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text[:MAX_TEXT] if text else None


class AuditTrail:
    """Appends audit entries for the handlers; reads them back for the auditors."""

    def __init__(self, journal: AuditJournal, clock: Callable[[], datetime]) -> None:
        self.journal = journal
        self._clock = clock

    async def record_operator_action(
        self,
        principal: Principal | None,
        action: str,
        *,
        target: str | None,
        reason: str | None,
        detail: str | None = None,
    ) -> int:
        """Append one operator action (``replay``, ``discard``, ...); return its sequence number."""
        return await self._append(principal, action, target=target, reason=reason, detail=detail)

    async def record_document_view(
        self, principal: Principal | None, message_id: str, *, reason: str | None, form: str
    ) -> int:
        """Append that ``principal`` was served the stored document of ``message_id``."""
        return await self._append(
            principal, DOCUMENT_VIEWED, target=message_id, reason=reason, detail=form
        )

    async def _append(
        self,
        principal: Principal | None,
        action: str,
        *,
        target: str | None,
        reason: str | None,
        detail: str | None,
    ) -> int:
        entry = AuditEntry(
            at=self._clock(),
            actor=principal.who if principal is not None else "unknown",
            role=principal.role if principal is not None else None,
            key_id=principal.key_id if principal is not None else None,
            action=action,
            target=target,
            reason=_cut(reason),
            detail=_cut(detail),
        )
        seq = await self.journal.audit_append(entry)
        log.info(
            "audit_recorded",
            audit_seq=seq,
            action=action,
            actor=entry.actor,
            role=entry.role,
            target=target,
        )
        return seq
