"""The audit-log part of the journal contract, against SQLite and PostgreSQL alike."""

from __future__ import annotations

from gateway.journal import AuditEntry, Journal, audit_of
from tests.journal.conftest import at, make_record


def entry(seconds: float, actor: str, action: str, target: str | None = None) -> AuditEntry:
    """An audit entry at ``seconds`` after the test epoch."""
    return AuditEntry(
        at=at(seconds),
        actor=actor,
        role="operator",
        key_id="k1",
        action=action,
        target=target,
        reason=f"why {seconds}",
        detail=None,
    )


async def test_entries_come_back_newest_first_with_every_field(journal: Journal) -> None:
    """Appended rows get growing sequence numbers and are read back newest first, intact."""
    audit = audit_of(journal)
    first = await audit.audit_append(entry(1, "Alice", "replay", "m-1"))
    second = await audit.audit_append(entry(2, "Bob", "document-viewed", "m-2"))
    assert second > first
    rows = await audit.audit_list()
    assert [r.seq for r in rows] == [second, first]
    assert rows[1] == AuditEntry(
        seq=first,
        at=at(1),
        actor="Alice",
        role="operator",
        key_id="k1",
        action="replay",
        target="m-1",
        reason="why 1",
        detail=None,
    )


async def test_filters_and_paging(journal: Journal) -> None:
    """Rows filter by actor, action and target, and page backwards by sequence number."""
    audit = audit_of(journal)
    for n in range(5):
        await audit.audit_append(entry(n, "Alice" if n % 2 else "Bob", "replay", f"m-{n}"))
    assert {r.actor for r in await audit.audit_list(actor="Alice")} == {"Alice"}
    assert [r.target for r in await audit.audit_list(target="m-3")] == ["m-3"]
    assert await audit.audit_list(action="discard") == []
    page = await audit.audit_list(limit=2)
    older = await audit.audit_list(limit=2, before_seq=page[-1].seq)
    assert [r.target for r in page + older] == ["m-4", "m-3", "m-2", "m-1"]


async def test_purging_messages_keeps_their_audit_rows(journal: Journal) -> None:
    """The audit log is not tied to messages: a purge of the message keeps who looked at it."""
    record = make_record(b"<x/>")
    await journal.record_accepted(record, b"<x/>", at=at(1))
    await audit_of(journal).audit_append(entry(2, "Alice", "document-viewed", record.message_id))
    assert await journal.purge_older_than(at(100)) == 1
    [row] = await audit_of(journal).audit_list(target=record.message_id)
    assert row.actor == "Alice"
