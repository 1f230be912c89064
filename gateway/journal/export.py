"""Journal entries as JSON: the one shape the API lists and the retention archive both write."""

from __future__ import annotations

from typing import Any

from gateway.journal.contract import MessageSummary, MessageView, Refusal


def summary_json(summary: MessageSummary) -> dict[str, Any]:
    """A message as lists, the message view and the archive show it."""
    record = summary.record
    return {
        "message_id": record.message_id,
        "state": summary.state.value,
        "state_at": summary.state_at.isoformat(),
        "sender": record.sender,
        "receiver": record.receiver,
        "document_type": record.document_type,
        "document_id": record.document_id,
        "function_code": record.function_code,
        "referenced_message_id": record.referenced_message_id,
        "test": record.test,
        "size": record.size,
        "digest_sha256": record.digest,
        "received_at": record.received_at.isoformat(),
        "accepted_at": summary.accepted_at.isoformat(),
        "attempts": summary.attempts,
        "last_error": summary.last_error_code,
    }


def refusal_json(refusal: Refusal) -> dict[str, Any]:
    """A refusal's journalled facts (the API adds whether the bytes were kept)."""
    return {
        "refusal_id": refusal.refusal_id,
        "state": refusal.state.value,
        "at": refusal.at.isoformat(),
        "channel": refusal.channel,
        "caller": refusal.caller,
        "message_id": refusal.message_id,
        "sender": refusal.sender,
        "receiver": refusal.receiver,
        "document_type": refusal.document_type,
        "document_id": refusal.document_id,
        "test": refusal.test,
        "size": refusal.size,
        "digest_sha256": refusal.digest,
        "code": refusal.error_code,
        "status": refusal.status,
        "detail": refusal.detail,
        "findings": list(refusal.findings),
    }


def timeline_json(view: MessageView | None) -> list[dict[str, Any]]:
    """A message's state changes, oldest first (none for a message no longer there)."""
    return [
        {
            "state": change.state.value,
            "at": change.at.isoformat(),
            "error": change.error_code,
            "detail": change.detail,
            "attempt": change.attempt,
        }
        for change in (view.timeline if view else ())
    ]
