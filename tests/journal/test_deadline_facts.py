"""The deadline list's journal read on both backends: every message that can carry an open or
overdue OCP limit, however old, a page per read, with the facts the view derives them from."""

from __future__ import annotations

import time
from datetime import timedelta

from gateway.core.deadlines import deadlines, selection
from gateway.core.states import MessageState
from gateway.journal import Journal, MessageRecord
from gateway.journal.contract import Cursor, DeadlineFacts, DeadlineQuery
from tests.journal.conftest import T0, at, make_record

DAY = timedelta(days=1)


async def _delivered(journal: Journal, record: MessageRecord, delivered_after: float) -> None:
    """Journal ``record`` and take it through QUEUED to DELIVERED ``delivered_after`` seconds
    after its receipt."""
    start = (record.received_at - T0).total_seconds()
    await journal.record_accepted(record, b"<doc/>", at=record.received_at)
    await journal.transition(record.message_id, MessageState.QUEUED, at=at(start + 1))
    await journal.claim_delivery(record.message_id, at=at(start + 2))
    await journal.mark_delivered(record.message_id, at=at(start + delivered_after))


def _request(kind: str, received_days: float, **overrides: object) -> MessageRecord:
    fields: dict[str, object] = {
        "document_type": kind,
        "document_id": None,
        "sender": "TH",
        "receiver": "SG",
        "received_at": T0 + received_days * DAY,
    }
    return make_record(b"<doc/>", **(fields | overrides))


def _query(status: str | None, now_days: float, **narrow: object) -> DeadlineQuery:
    chosen = selection(status)
    before = None if chosen.min_days is None else T0 + (now_days - chosen.min_days) * DAY
    return DeadlineQuery(
        relations=chosen.relations,
        open_only=chosen.open_only,
        received_before=before,
        **narrow,  # type: ignore[arg-type]
    )


def _statuses(fact: DeadlineFacts, now_days: float) -> dict[str, str]:
    found = deadlines(
        fact.summary.record.document_type, fact.delivered_at, fact.links, T0 + now_days * DAY
    )
    return {d.name: d.status for d in found}


async def test_an_old_open_check_is_found_beyond_the_newest_thousand(journal: Journal) -> None:
    """A retroactive check sent long ago and never answered is listed as overdue although 1,100
    newer messages (e-Form Ds, ACDDs, answered checks) came after it: one read."""
    old = _request("RCQ", 0)
    await _delivered(journal, old, 10)
    started = time.perf_counter()
    for n in range(1100):
        kind = ("EFD", "ACDD")[n % 2]
        newer = make_record(
            b"<doc/>", document_type=kind, received_at=T0 + DAY + n * 60 * 1e-6 * DAY
        )
        await journal.record_accepted(newer, b"<doc/>", at=newer.received_at)
    written = time.perf_counter() - started
    page = await journal.deadline_facts(_query("overdue", 100, limit=50))
    assert [f.summary.record.message_id for f in page] == [old.message_id]
    assert _statuses(page[0], 100) == {"reply": "overdue", "whole check": "due"}
    assert page[0].delivered_at == at(10)
    assert written < 120  # the 1,100 rows go through the journal API in well under two minutes


async def test_the_facts_are_the_views_facts(journal: Journal) -> None:
    """Delivery time and links read for the list are those the message view shows (no drift):
    the first DELIVERED row, and the message's own links of the limits' relations only."""
    request = _request("VVQ", 0)
    await _delivered(journal, request, 5)
    for relation, day in (
        ("verification-visit-consent", 3),
        ("verification-visit-result", 20),
        ("receipt", 1),
    ):
        await journal.link(request.message_id, f"m-{relation}", relation, at=T0 + day * DAY)
    (fact,) = await journal.deadline_facts(_query(None, 30))
    view = await journal.get(request.message_id)
    assert view is not None
    delivered = [c.at for c in view.timeline if c.state is MessageState.DELIVERED]
    assert fact.delivered_at == delivered[0]
    assert fact.links == tuple(
        (link.relation, link.at) for link in view.links if link.relation != "receipt"
    )
    assert fact.summary == view.summary
    assert _statuses(fact, 30) == {"consent": "met", "visit": "met", "whole visit": "due"}


async def test_a_determined_check_is_no_longer_open(journal: Journal) -> None:
    """Once replied to and determined, a check leaves the open list but stays in 'met'."""
    done, waiting = _request("RCQ", 0), _request("RCQ", 1)
    for record in (done, waiting):
        await _delivered(journal, record, 5)
    await journal.link(done.message_id, "r", "retroactive-check-reply", at=T0 + 10 * DAY)
    await journal.link(done.message_id, "d", "origin-determination", at=T0 + 20 * DAY)
    open_ids = [
        f.summary.record.message_id for f in await journal.deadline_facts(_query("due", 30))
    ]
    met = await journal.deadline_facts(_query("met", 30))
    assert open_ids == [waiting.message_id]
    assert [f.summary.record.message_id for f in met] == [done.message_id, waiting.message_id]
    assert _statuses(met[0], 30) == {"reply": "met", "whole check": "met"}


async def test_pages_follow_the_cursor_oldest_first_with_filters(journal: Journal) -> None:
    """Pages come oldest first without repeats; type and country narrow the list."""
    records = [_request("RCQ", n) for n in range(5)]
    records.append(_request("VVQ", 2.5, sender="MY", receiver="SG"))
    records.append(make_record(b"<doc/>", received_at=T0 + 3.5 * DAY))  # an e-Form D SG -> TH
    for record in records:
        await _delivered(journal, record, 5)
    seen: list[str] = []
    after = None
    reads = 0
    while True:
        page = await journal.deadline_facts(_query(None, 10, after=after, limit=3))
        reads += 1
        seen += [f.summary.record.message_id for f in page]
        if len(page) < 3:
            break
        last = page[-1].summary.record
        after = Cursor(last.received_at, last.message_id)
    by_time = sorted(records, key=lambda r: r.received_at)
    assert seen == [r.message_id for r in by_time]
    assert reads == 3
    visits = await journal.deadline_facts(_query(None, 10, document_type="VVQ"))
    assert [f.summary.record.sender for f in visits] == ["MY"]
    mine = await journal.deadline_facts(_query(None, 10, party="MY"))
    assert [f.summary.record.document_type for f in mine] == ["VVQ"]
    windows = await journal.deadline_facts(_query("open", 10))
    assert [f.summary.record.document_type for f in windows] == ["EFD"]
