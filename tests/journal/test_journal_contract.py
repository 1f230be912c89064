"""The journal contract: every test runs against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import textwrap
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.core import lease
from gateway.core.states import InvalidTransition, MessageState
from gateway.errors import NotFound
from gateway.journal import (
    DEFAULT_LEASE,
    AcceptResult,
    ClaimResult,
    Counts,
    Journal,
    MessageRecord,
)
from tests.journal.conftest import T0, OpenJournal, at, make_record

PAYLOAD = b"<EFormD>\x00\xff binary-safe \xe2\x82\xac</EFormD>"


async def accept(journal: Journal, *, payload: bytes = PAYLOAD, **overrides: Any) -> MessageRecord:
    """Record a new message and check it was accepted."""
    record = make_record(payload, **overrides)
    outcome = await journal.record_accepted(record, payload, at=at(1))
    assert outcome.result is AcceptResult.ACCEPTED
    return record


async def queued(journal: Journal, **overrides: Any) -> MessageRecord:
    """A message the broker has confirmed, ready for a delivery worker."""
    record = await accept(journal, **overrides)
    assert await journal.transition(record.message_id, MessageState.QUEUED, at=at(2))
    return record


async def timeline_states(journal: Journal, message_id: str) -> list[MessageState]:
    """The states of a message's timeline, in order."""
    view = await journal.get(message_id)
    assert view is not None
    return [change.state for change in view.timeline]


# --- accepting and deduplicating -----------------------------------------------------------


async def test_accept_writes_message_timeline_and_payload(journal: Journal) -> None:
    """A new message gets its row, RECEIVED and ACCEPTED rows and its payload."""
    record = make_record(PAYLOAD, received_at=at(0))
    outcome = await journal.record_accepted(record, PAYLOAD, at=at(1))
    assert outcome.result is AcceptResult.ACCEPTED
    assert outcome.message_id == record.message_id
    assert outcome.state is MessageState.ACCEPTED
    assert outcome.accepted_at == at(1)
    view = await journal.get(record.message_id)
    assert view is not None
    assert view.summary.record == record
    assert view.summary.state is MessageState.ACCEPTED
    assert view.summary.attempts == 0
    assert [(c.state, c.at) for c in view.timeline] == [
        (MessageState.RECEIVED, at(0)),
        (MessageState.ACCEPTED, at(1)),
    ]
    assert view.links == ()


async def test_claim_is_granted_only_for_the_accepted_bytes(journal: Journal) -> None:
    """A claim naming other bytes' digest is refused as OTHER_BYTES; the accepted ones win."""
    record = await queued(journal)
    other = hashlib.sha256(PAYLOAD + b" ").hexdigest()
    assert await journal.claim_delivery(record.message_id, at=at(3), digest=other) is (
        ClaimResult.OTHER_BYTES
    )
    assert await timeline_states(journal, record.message_id) == [
        MessageState.RECEIVED,
        MessageState.ACCEPTED,
        MessageState.QUEUED,
    ]
    same = hashlib.sha256(PAYLOAD).hexdigest()
    assert await journal.claim_delivery(record.message_id, at=at(4), digest=same) is (
        ClaimResult.GRANTED
    )


async def test_other_bytes_wait_while_another_worker_holds_the_claim(journal: Journal) -> None:
    """Other bytes meeting a live lease are BUSY (as any copy); once it ran out, OTHER_BYTES."""
    record = await queued(journal)
    lease = timedelta(seconds=10)
    assert await journal.claim_delivery(record.message_id, at=at(3), lease=lease) is (
        ClaimResult.GRANTED
    )
    other = hashlib.sha256(b"<other/>").hexdigest()
    assert await journal.claim_delivery(record.message_id, at=at(5), digest=other) is (
        ClaimResult.BUSY
    )
    assert await journal.claim_delivery(record.message_id, at=at(20), digest=other) is (
        ClaimResult.OTHER_BYTES
    )


async def test_a_delivered_message_stays_delivered_whatever_bytes_come_back(
    journal: Journal,
) -> None:
    """A late copy with other bytes of a delivered message is DELIVERED (ack), not parked."""
    record = await queued(journal)
    assert await journal.claim_delivery(record.message_id, at=at(3)) is ClaimResult.GRANTED
    await journal.mark_delivered(record.message_id, at=at(4))
    other = hashlib.sha256(b"<other/>").hexdigest()
    assert await journal.claim_delivery(record.message_id, at=at(5), digest=other) is (
        ClaimResult.DELIVERED
    )


async def test_reads_and_writes_issued_together_all_succeed(journal: Journal) -> None:
    """Many concurrent reads and writes (batched by a group commit) each get their answer."""
    records = [await queued(journal) for _ in range(10)]
    results = await asyncio.gather(
        *(journal.get(r.message_id) for r in records),
        *(journal.claim_delivery(r.message_id, at=at(3)) for r in records),
        *(journal.payload(r.message_id) for r in records),
        *(journal.get(r.message_id) for r in records),
    )
    assert all(view is not None for view in results[:10])
    assert all(claim is ClaimResult.GRANTED for claim in results[10:20])
    assert results[20:30] == [PAYLOAD] * 10
    for record in records:
        assert await timeline_states(journal, record.message_id) == [
            MessageState.RECEIVED,
            MessageState.ACCEPTED,
            MessageState.QUEUED,
            MessageState.DELIVERING,
        ]


async def test_resubmission_returns_first_answer(journal: Journal) -> None:
    """The same message id again returns the first acceptance and writes nothing."""
    record = await accept(journal)
    again = await journal.record_accepted(record, PAYLOAD, at=at(50))
    assert again.result is AcceptResult.RESUBMITTED
    assert again.message_id == record.message_id
    assert again.accepted_at == at(1)
    assert again.state is MessageState.ACCEPTED
    assert again.same_payload
    assert await timeline_states(journal, record.message_id) == [
        MessageState.RECEIVED,
        MessageState.ACCEPTED,
    ]


async def test_resubmission_reports_current_state(journal: Journal) -> None:
    """A resubmission tells the ingest whether the first publish was confirmed (QUEUED)."""
    record = await queued(journal)
    again = await journal.record_accepted(record, PAYLOAD, at=at(50))
    assert again.result is AcceptResult.RESUBMITTED
    assert again.state is MessageState.QUEUED


async def test_resubmission_with_other_payload_is_flagged(journal: Journal) -> None:
    """A different document under a known message id is flagged, not stored."""
    record = await accept(journal)
    other = b"<EFormD>changed</EFormD>"
    impostor = make_record(other, message_id=record.message_id)
    outcome = await journal.record_accepted(impostor, other, at=at(5))
    assert outcome.result is AcceptResult.RESUBMITTED
    assert not outcome.same_payload
    assert await journal.payload(record.message_id) == PAYLOAD


async def test_business_key_conflict_names_original(journal: Journal) -> None:
    """The same business key under a new message id is a conflict naming the original."""
    original = await accept(journal, document_id="SG-2026-0001")
    copy = make_record(PAYLOAD, document_id="SG-2026-0001")
    outcome = await journal.record_accepted(copy, PAYLOAD, at=at(9))
    assert outcome.result is AcceptResult.CONFLICT
    assert outcome.message_id == original.message_id
    assert await journal.get(copy.message_id) is None
    assert await journal.payload(copy.message_id) is None


async def test_replacement_and_cancellation_are_accepted(journal: Journal) -> None:
    """Function codes 5 and 1 with the same document id are new documents; repeats conflict."""
    await accept(journal, document_id="SG-2026-0002", function_code="9")
    replacement = await accept(journal, document_id="SG-2026-0002", function_code="5")
    await accept(journal, document_id="SG-2026-0002", function_code="1")
    second = make_record(PAYLOAD, document_id="SG-2026-0002", function_code="5")
    outcome = await journal.record_accepted(second, PAYLOAD, at=at(3))
    assert outcome.result is AcceptResult.CONFLICT
    assert outcome.message_id == replacement.message_id


async def test_business_key_is_per_sender_and_document_type(journal: Journal) -> None:
    """Another sender, or an ACDD carrying the Form D's number, is not a duplicate."""
    await accept(journal, document_id="X-1")
    await accept(journal, document_id="X-1", sender="MY")
    await accept(journal, document_id="X-1", document_type="ACDD")


async def test_messages_without_document_id_never_conflict(journal: Journal) -> None:
    """Receipts and answers without a document id are keyed by message id alone."""
    await accept(journal, document_id=None, document_type="RCT")
    await accept(journal, document_id=None, document_type="RCT")


async def test_concurrent_submissions_settle_once(journal: Journal, open_more: OpenJournal) -> None:
    """Racing submissions: one id accepted once, one business key owned by one message."""
    other = await open_more()
    record = make_record(PAYLOAD)
    same_id = await asyncio.gather(
        *(j.record_accepted(record, PAYLOAD, at=at(1)) for j in (journal, other) * 5)
    )
    assert sorted(o.result.value for o in same_id) == ["accepted"] + ["resubmitted"] * 9
    rivals = [make_record(PAYLOAD, document_id="SG-RACE") for _ in range(10)]
    same_key = await asyncio.gather(
        *(
            (journal if i % 2 else other).record_accepted(r, PAYLOAD, at=at(1))
            for i, r in enumerate(rivals)
        )
    )
    winners = [o for o in same_key if o.result is AcceptResult.ACCEPTED]
    assert len(winners) == 1
    assert all(o.message_id == winners[0].message_id for o in same_key)


async def test_record_must_describe_payload(journal: Journal) -> None:
    """A size or digest that does not match the payload is refused before writing."""
    with pytest.raises(ValueError, match="digest"):
        await journal.record_accepted(make_record(b"other"), b"0ther", at=at(1))
    with pytest.raises(ValueError, match="size"):
        await journal.record_accepted(make_record(PAYLOAD, size=1), PAYLOAD, at=at(1))


async def test_naive_datetimes_are_refused(journal: Journal) -> None:
    """Timestamps without a zone are refused; aware ones come back in UTC."""
    record = await accept(journal)
    with pytest.raises(ValueError, match="timezone-aware"):
        await journal.transition(record.message_id, MessageState.QUEUED, at=T0.replace(tzinfo=None))
    bangkok = timezone(timedelta(hours=7))
    await journal.transition(record.message_id, MessageState.QUEUED, at=at(2).astimezone(bangkok))
    view = await journal.get(record.message_id)
    assert view is not None
    assert view.timeline[-1].at == at(2)
    assert view.timeline[-1].at.tzinfo == UTC


async def test_payload_round_trip(journal: Journal) -> None:
    """Payload bytes come back exactly, including NUL and non-UTF-8 bytes and large sizes."""
    big = bytes(range(256)) * 4096  # 1 MiB
    record = await accept(journal, payload=big)
    assert await journal.payload(record.message_id) == big
    assert await journal.payload("no-such-message") is None


# --- transitions and the timeline --------------------------------------------------------


async def test_timeline_keeps_order_and_details(journal: Journal) -> None:
    """Transitions append rows in order with their error codes, details and attempts."""
    record = await queued(journal)
    mid = record.message_id
    assert await journal.claim_delivery(mid, at=at(3)) is ClaimResult.GRANTED
    assert await journal.transition(
        mid, MessageState.RETRYING, at=at(4), error_code="peer-timeout", detail="no answer in 30 s"
    )
    assert await journal.claim_delivery(mid, at=at(40)) is ClaimResult.GRANTED
    assert await journal.mark_delivered(mid, at=at(41))
    view = await journal.get(mid)
    assert view is not None
    assert [(c.state, c.at) for c in view.timeline] == [
        (MessageState.RECEIVED, T0),
        (MessageState.ACCEPTED, at(1)),
        (MessageState.QUEUED, at(2)),
        (MessageState.DELIVERING, at(3)),
        (MessageState.RETRYING, at(4)),
        (MessageState.DELIVERING, at(40)),
        (MessageState.DELIVERED, at(41)),
    ]
    retry = view.timeline[4]
    assert (retry.error_code, retry.detail, retry.attempt) == (
        "peer-timeout",
        "no answer in 30 s",
        1,
    )
    assert [c.attempt for c in view.timeline if c.state is MessageState.DELIVERING] == [1, 2]
    assert view.timeline[-1].attempt == 2
    assert view.summary.state is MessageState.DELIVERED
    assert view.summary.state_at == at(41)
    assert view.summary.attempts == 2
    assert view.summary.last_error_code == "peer-timeout"


async def test_repeated_report_is_a_noop(journal: Journal) -> None:
    """Reporting the state a message is already in returns False and writes no row."""
    record = await queued(journal)
    assert not await journal.transition(record.message_id, MessageState.QUEUED, at=at(3))
    assert await timeline_states(journal, record.message_id) == [
        MessageState.RECEIVED,
        MessageState.ACCEPTED,
        MessageState.QUEUED,
    ]


async def test_invalid_transition_is_refused(journal: Journal) -> None:
    """A move the state table forbids raises InvalidTransition and writes nothing."""
    record = await queued(journal)
    with pytest.raises(InvalidTransition):
        await journal.transition(record.message_id, MessageState.DELIVERED, at=at(3))
    with pytest.raises(InvalidTransition):
        await journal.transition(record.message_id, MessageState.REJECTED, at=at(3))
    with pytest.raises(InvalidTransition):  # a state nothing ever moves back to
        await journal.transition(record.message_id, MessageState.RECEIVED, at=at(3))
    view = await journal.get(record.message_id)
    assert view is not None
    assert view.summary.state is MessageState.QUEUED
    assert len(view.timeline) == 3


async def test_unknown_message_is_not_found(journal: Journal) -> None:
    """Transitions and links on an unknown message id raise NotFound; get gives None."""
    with pytest.raises(NotFound):
        await journal.transition("no-such-message", MessageState.QUEUED, at=at(1))
    with pytest.raises(NotFound):
        await journal.link("no-such-message", "other", "receipt", at=at(1))
    assert await journal.get("no-such-message") is None


async def test_delivering_only_through_claim(journal: Journal) -> None:
    """transition() refuses DELIVERING: only a claim may set the lease that guards it."""
    record = await queued(journal)
    with pytest.raises(ValueError, match="claim_delivery"):
        await journal.transition(record.message_id, MessageState.DELIVERING, at=at(3))


async def test_receipt_then_answer(journal: Journal) -> None:
    """DELIVERED -> RECEIPTED -> ANSWERED; a late receipt after the answer is absorbed."""
    record = await queued(journal)
    mid = record.message_id
    await journal.claim_delivery(mid, at=at(3))
    await journal.mark_delivered(mid, at=at(4))
    assert await journal.transition(mid, MessageState.ANSWERED, at=at(5))
    assert not await journal.transition(mid, MessageState.RECEIPTED, at=at(6))
    assert (await timeline_states(journal, mid))[-2:] == [
        MessageState.DELIVERED,
        MessageState.ANSWERED,
    ]


async def test_dead_message_is_replayed(journal: Journal) -> None:
    """A DEAD message can be replayed to QUEUED and delivered; a delivered one cannot."""
    record = await queued(journal)
    mid = record.message_id
    await journal.claim_delivery(mid, at=at(3))
    assert await journal.transition(mid, MessageState.DEAD, at=at(4), error_code="delivery-refused")
    assert await journal.claim_delivery(mid, at=at(5)) is ClaimResult.NOT_DELIVERABLE
    assert await journal.transition(
        mid, MessageState.QUEUED, at=at(6), detail="replayed by operator"
    )
    assert await journal.claim_delivery(mid, at=at(7)) is ClaimResult.GRANTED
    assert await journal.mark_delivered(mid, at=at(8))
    assert not await journal.transition(mid, MessageState.QUEUED, at=at(9))


# --- claims: exactly one hand-over ------------------------------------------------------


async def test_claim_granted_exactly_once_under_concurrency(journal: Journal) -> None:
    """Twenty concurrent claims on one message: exactly one is granted, the rest are busy."""
    record = await queued(journal)
    results = await asyncio.gather(
        *(journal.claim_delivery(record.message_id, at=at(3)) for _ in range(20))
    )
    assert results.count(ClaimResult.GRANTED) == 1
    assert results.count(ClaimResult.BUSY) == 19
    assert await timeline_states(journal, record.message_id) == [
        MessageState.RECEIVED,
        MessageState.ACCEPTED,
        MessageState.QUEUED,
        MessageState.DELIVERING,
    ]


async def test_claim_granted_once_across_connections(
    journal: Journal, open_more: OpenJournal
) -> None:
    """Two independent journals on the same storage race on 30 messages: one grant each."""
    other = await open_more()
    records = [await queued(journal) for _ in range(30)]
    claims = [
        j.claim_delivery(r.message_id, at=at(3))
        for r in records
        for j in (journal, other, journal, other)
    ]
    results = await asyncio.gather(*claims)
    assert results.count(ClaimResult.GRANTED) == 30


async def test_claim_granted_once_across_processes(journal: Journal, journal_url: str) -> None:
    """Three OS processes claim the same 20 messages: each message is granted exactly once."""
    records = [await queued(journal) for _ in range(20)]
    ids = ",".join(r.message_id for r in records)
    script = textwrap.dedent(
        """
        import asyncio, sys
        from datetime import datetime
        from gateway.journal import open_journal

        async def main(url, moment, ids):
            journal = await open_journal(url)
            granted = 0
            for message_id in ids.split(","):
                claim = await journal.claim_delivery(message_id, at=datetime.fromisoformat(moment))
                granted += claim.granted
            await journal.close()
            print(granted)

        asyncio.run(main(*sys.argv[1:]))
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            journal_url,
            at(3).isoformat(),
            ids,
            stdout=asyncio.subprocess.PIPE,
            cwd=root,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    assert all(p.returncode == 0 for p in procs)
    assert sum(int(out) for out, _ in outputs) == 20


async def test_redelivery_after_crash(journal: Journal) -> None:
    """A crashed worker's claim blocks others until its lease runs out; then one re-claims."""
    record = await queued(journal)
    mid = record.message_id
    assert await journal.claim_delivery(mid, at=at(3)) is ClaimResult.GRANTED
    # The worker dies; the broker redelivers at once: the lease still runs.
    assert await journal.claim_delivery(mid, at=at(4)) is ClaimResult.BUSY
    expired = at(3) + DEFAULT_LEASE
    assert await journal.claim_delivery(mid, at=expired) is ClaimResult.GRANTED
    assert await journal.claim_delivery(mid, at=expired) is ClaimResult.BUSY
    assert await journal.mark_delivered(mid, at=expired + timedelta(seconds=1))
    # A further redelivery after the hand-over is recognised and must not reach the NSW.
    later = expired + 2 * DEFAULT_LEASE
    assert await journal.claim_delivery(mid, at=later) is ClaimResult.DELIVERED
    assert not await journal.mark_delivered(mid, at=later)
    view = await journal.get(mid)
    assert view is not None
    assert view.summary.attempts == 2
    assert [c.state for c in view.timeline].count(MessageState.DELIVERED) == 1


async def test_claim_lease_is_configurable(journal: Journal) -> None:
    """A short lease expires sooner; a non-positive lease is refused."""
    record = await queued(journal)
    lease = timedelta(seconds=10)
    assert await journal.claim_delivery(record.message_id, at=at(3), lease=lease) is (
        ClaimResult.GRANTED
    )
    assert await journal.claim_delivery(record.message_id, at=at(12), lease=lease) is (
        ClaimResult.BUSY
    )
    assert await journal.claim_delivery(record.message_id, at=at(13), lease=lease) is (
        ClaimResult.GRANTED
    )
    with pytest.raises(ValueError, match="lease"):
        await journal.claim_delivery(record.message_id, at=at(14), lease=timedelta(0))


async def test_claim_answers_by_state(journal: Journal) -> None:
    """Claims on unknown, not yet queued, retrying and dead messages answer as documented."""
    assert await journal.claim_delivery("no-such-message", at=at(1)) is ClaimResult.UNKNOWN
    early = await accept(journal)
    # The worker consumed before the ingest wrote QUEUED: still granted, QUEUED absorbed.
    assert await journal.claim_delivery(early.message_id, at=at(2)) is ClaimResult.GRANTED
    assert not await journal.transition(early.message_id, MessageState.QUEUED, at=at(3))
    await journal.transition(early.message_id, MessageState.RETRYING, at=at(4))
    assert await journal.claim_delivery(early.message_id, at=at(5)) is ClaimResult.GRANTED
    await journal.transition(early.message_id, MessageState.DEAD, at=at(6))
    assert await journal.claim_delivery(early.message_id, at=at(7)) is (ClaimResult.NOT_DELIVERABLE)


async def _in_state(journal: Journal, state: MessageState) -> MessageRecord:
    """A message brought to ``state`` through the journal; a claim (if any) was taken at 3 s."""
    if state is MessageState.ACCEPTED:
        return await accept(journal)
    record = await queued(journal)
    if state is MessageState.QUEUED:
        return record
    if state is MessageState.DEAD:
        assert await journal.transition(record.message_id, MessageState.DEAD, at=at(3))
        return record
    assert await journal.claim_delivery(record.message_id, at=at(3)) is ClaimResult.GRANTED
    follow = {
        MessageState.DELIVERING: (),
        MessageState.RETRYING: (MessageState.RETRYING,),
        MessageState.DELIVERED: (MessageState.DELIVERED,),
        MessageState.RECEIPTED: (MessageState.DELIVERED, MessageState.RECEIPTED),
        MessageState.ANSWERED: (MessageState.DELIVERED, MessageState.ANSWERED),
    }[state]
    for step in follow:
        assert await journal.transition(record.message_id, step, at=at(4))
    return record


@pytest.mark.parametrize(
    "state",
    [
        MessageState.ACCEPTED,
        MessageState.QUEUED,
        MessageState.DELIVERING,
        MessageState.RETRYING,
        MessageState.DELIVERED,
        MessageState.RECEIPTED,
        MessageState.ANSWERED,
        MessageState.DEAD,
    ],
)
async def test_claim_agrees_with_the_core_rule(journal: Journal, state: MessageState) -> None:
    """In every state the journal can reach, its claim answers as gateway.core.lease.claim."""
    other = hashlib.sha256(PAYLOAD + b" ").hexdigest()
    accepted = hashlib.sha256(PAYLOAD).hexdigest()
    for now in (at(5), at(3) + DEFAULT_LEASE):  # within the 3 s claim's lease, and after it
        record = await _in_state(journal, state)
        lease_until = at(3) + DEFAULT_LEASE if state is MessageState.DELIVERING else None
        for digest in (other, None, accepted):  # a refused claim writes nothing: ask in turn
            expected = lease.claim(
                state, lease_until=lease_until, now=now, same_bytes=digest != other
            )
            answer = await journal.claim_delivery(record.message_id, at=now, digest=digest)
            assert answer is expected, (now, digest)
            if answer is ClaimResult.GRANTED:
                break


# --- links, lists, counts, retention ------------------------------------------------------


async def test_link_shows_on_both_sides(journal: Journal) -> None:
    """A receipt and a response linked to a message appear in both messages' views."""
    original = await queued(journal)
    receipt = await accept(journal, document_type="RCT", document_id=None, sender="TH")
    response = await accept(journal, document_type="RES", document_id=None, sender="TH")
    mid = original.message_id
    assert await journal.link(mid, receipt.message_id, "receipt", at=at(10))
    assert await journal.link(mid, response.message_id, "response", at=at(11))
    assert not await journal.link(mid, receipt.message_id, "receipt", at=at(12))
    view = await journal.get(mid)
    assert view is not None
    assert [(lk.related_message_id, lk.relation, lk.at) for lk in view.links] == [
        (receipt.message_id, "receipt", at(10)),
        (response.message_id, "response", at(11)),
    ]
    receipt_view = await journal.get(receipt.message_id)
    assert receipt_view is not None
    assert [(lk.message_id, lk.relation) for lk in receipt_view.links] == [(mid, "receipt")]


async def test_list_messages_filters_and_pages(journal: Journal) -> None:
    """Lists are newest first, filter by state, sender, receiver and test flag, and page."""
    ids = [
        (await accept(journal, received_at=at(i), receiver="TH" if i % 2 else "MY")).message_id
        for i in range(6)
    ]
    test_msg = await accept(journal, received_at=at(10), test=True)
    await journal.transition(ids[0], MessageState.QUEUED, at=at(20))
    listed = await journal.list_messages()
    assert [m.record.message_id for m in listed] == [test_msg.message_id, *reversed(ids)]
    assert [m.record.message_id for m in await journal.list_messages(test=False, limit=2)] == [
        ids[5],
        ids[4],
    ]
    page = await journal.list_messages(test=False, before=at(4), limit=2)
    assert [m.record.message_id for m in page] == [ids[3], ids[2]]
    assert {m.record.message_id for m in await journal.list_messages(receiver="MY")} == {
        ids[0],
        ids[2],
        ids[4],
    }
    assert [
        m.record.message_id for m in await journal.list_messages(state=MessageState.QUEUED)
    ] == [ids[0]]
    assert [m.record.message_id for m in await journal.list_messages(test=True)] == [
        test_msg.message_id
    ]
    assert await journal.list_messages(sender="VN") == []


async def test_counts_exclude_test_messages(journal: Journal) -> None:
    """Counts by state and receiver leave test messages out unless asked for."""
    for _ in range(3):
        await accept(journal, receiver="TH")
    await queued(journal, receiver="MY")
    await accept(journal, receiver="TH", test=True)
    counts = await journal.counts()
    assert counts.by_state() == {MessageState.ACCEPTED: 3, MessageState.QUEUED: 1}
    assert _per_receiver(counts) == {"MY": 1, "TH": 3}
    with_tests = await journal.counts(include_test=True)
    assert _per_receiver(with_tests) == {"MY": 1, "TH": 4}


def _per_receiver(counts: Counts) -> dict[str, int]:
    """Totals per receiver over every state, from the count rows."""
    totals: dict[str, int] = {}
    for row in counts.rows:
        totals[row.receiver] = totals.get(row.receiver, 0) + row.count
    return totals


async def test_purge_removes_only_old_messages(journal: Journal) -> None:
    """Purge deletes messages idle since before the cutoff, with payload, timeline and links."""
    old = await accept(journal)
    recent = await accept(journal)
    await journal.link(old.message_id, recent.message_id, "response", at=at(2))
    # The recent one moved after the cutoff, so it stays even though it was received early.
    await journal.transition(recent.message_id, MessageState.QUEUED, at=at(3600))
    cutoff = at(1800)
    assert await journal.purge_older_than(cutoff) == 1
    assert await journal.get(old.message_id) is None
    assert await journal.payload(old.message_id) is None
    view = await journal.get(recent.message_id)
    assert view is not None
    assert view.links == ()
    assert await journal.payload(recent.message_id) == PAYLOAD
    assert await journal.purge_older_than(cutoff) == 0
    # The business key of a purged message is free again.
    await accept(journal, document_id=old.document_id)


async def test_purge_in_batches(journal: Journal) -> None:
    """A purge larger than one batch removes everything older than the cutoff."""
    for _ in range(1100):
        await accept(journal)
    assert await journal.purge_older_than(at(2)) == 1100
    assert await journal.list_messages(limit=10) == []


async def test_reopen_keeps_data(journal: Journal, open_more: OpenJournal) -> None:
    """Opening the same storage again is idempotent and sees what was written."""
    record = await accept(journal)
    again = await open_more()
    view = await again.get(record.message_id)
    assert view is not None
    assert view.summary.record == record
