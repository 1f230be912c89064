"""The audit log and delivery outcomes parts of the journal contract, on both backends."""

from __future__ import annotations

from gateway.core.states import MessageState
from gateway.journal import AuditEntry, Journal, audit_of, outcomes_of
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


async def test_delivery_outcomes_per_receiver(journal: Journal) -> None:
    """Deliveries and failures in the window are counted per receiver, with the last error."""
    good = make_record(b"<a/>")
    bad = make_record(b"<b/>", receiver="MY")
    for record, payload in ((good, b"<a/>"), (bad, b"<b/>")):
        await journal.record_accepted(record, payload, at=at(1))
        await journal.transition(record.message_id, MessageState.QUEUED, at=at(2))
        await journal.claim_delivery(record.message_id, at=at(3))
    await journal.mark_delivered(good.message_id, at=at(4))
    await journal.transition(
        bad.message_id, MessageState.RETRYING, at=at(5), error_code="peer-unavailable"
    )
    await journal.claim_delivery(bad.message_id, at=at(6))
    await journal.transition(
        bad.message_id, MessageState.DEAD, at=at(7), error_code="receiver-refused", detail="no"
    )
    outcomes = await outcomes_of(journal).delivery_outcomes(since=at(0))
    assert (outcomes["TH"].delivered, outcomes["TH"].failed) == (1, 0)
    assert outcomes["TH"].last_success == at(4)
    my = outcomes["MY"]
    assert (my.delivered, my.failed, my.last_success) == (0, 2, None)
    assert my.last_failure is not None and my.last_failure.error_code == "receiver-refused"
    assert my.failing_since == at(5)
    assert await outcomes_of(journal).delivery_outcomes(since=at(100)) == {}
