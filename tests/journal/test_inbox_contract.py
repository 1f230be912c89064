"""The pull-inbox part of the journal contract, against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gateway.core.states import MessageState
from gateway.errors import NotFound
from gateway.journal import InboxAck, InboxJournal, Journal, MessageRecord, inbox_of
from tests.journal.conftest import OpenJournal, at, make_record

PAYLOAD = b"<EFormD>\x00\xff inbox bytes \xe2\x82\xac</EFormD>"
LEASE = timedelta(seconds=60)


async def accept(journal: Journal, **overrides: Any) -> MessageRecord:
    """Record a new message from SG to TH."""
    record = make_record(PAYLOAD, **overrides)
    await journal.record_accepted(record, PAYLOAD, at=at(1))
    return record


async def stored(journal: Journal, **overrides: Any) -> MessageRecord:
    """A message handed over to TH's inbox at t=10."""
    record = await accept(journal, **overrides)
    assert await inbox_of(journal).inbox_store(
        record.message_id, receiver=record.receiver, at=at(10)
    )
    return record


async def waiting_ids(inbox: InboxJournal, receiver: str, seconds: float) -> list[str]:
    """Message ids ``receiver`` could fetch at ``seconds``."""
    return [item.message_id for item in await inbox.inbox_waiting(receiver, at=at(seconds))]


async def test_stored_message_is_listed_with_its_facts(journal: Journal) -> None:
    """A stored message waits in its receiver's inbox with sender, type, size and since."""
    record = await stored(journal)
    [item] = await inbox_of(journal).inbox_waiting("TH", at=at(11))
    assert item.message_id == record.message_id
    assert (item.receiver, item.sender, item.document_type) == ("TH", "SG", "EFD")
    assert item.size == len(PAYLOAD)
    assert item.stored_at == item.available_since == at(10)
    assert (item.fetches, item.lease_until, item.acked_at) == (0, None, None)


async def test_store_is_idempotent(journal: Journal) -> None:
    """Storing the same message again changes nothing and says so."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    assert not await inbox.inbox_store(record.message_id, receiver="TH", at=at(20))
    [item] = await inbox.inbox_waiting("TH", at=at(21))
    assert item.stored_at == at(10)


async def test_store_unknown_message_is_not_found(journal: Journal) -> None:
    """Only a journalled message can enter an inbox."""
    with pytest.raises(NotFound):
        await inbox_of(journal).inbox_store("no-such-message", receiver="TH", at=at(1))


async def test_inbox_is_per_receiver_and_oldest_first(journal: Journal) -> None:
    """Each party sees only its own documents, oldest first."""
    inbox = inbox_of(journal)
    first = await accept(journal)
    second = await accept(journal)
    to_my = await accept(journal, receiver="MY")
    await inbox.inbox_store(second.message_id, receiver="TH", at=at(12))
    await inbox.inbox_store(first.message_id, receiver="TH", at=at(11))
    await inbox.inbox_store(to_my.message_id, receiver="MY", at=at(11))
    assert await waiting_ids(inbox, "TH", 20) == [first.message_id, second.message_id]
    assert await waiting_ids(inbox, "MY", 20) == [to_my.message_id]
    assert await waiting_ids(inbox, "VN", 20) == []


async def test_fetch_returns_bytes_and_hides_until_lease_ends(journal: Journal) -> None:
    """A fetch returns the payload and leases it; it waits again once the lease ran out."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    document = await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    assert document is not None
    assert document.payload == PAYLOAD
    assert document.item.fetches == 1
    assert document.item.lease_until == at(80)
    assert await waiting_ids(inbox, "TH", 79) == []
    [again] = await inbox.inbox_waiting("TH", at=at(80))
    assert again.available_since == at(80)
    assert again.fetches == 1


async def test_fetch_during_live_lease_is_refused(journal: Journal) -> None:
    """Pickup is exclusive: a fetch while a lease lives gets nothing and leaves the lease."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    assert await inbox.inbox_fetch("TH", record.message_id, at=at(50), lease=LEASE) is None
    assert await waiting_ids(inbox, "TH", 79) == []
    document = await inbox.inbox_fetch("TH", record.message_id, at=at(80), lease=LEASE)
    assert document is not None
    assert document.item.lease_until == at(140)
    assert document.item.fetches == 2


async def test_concurrent_fetches_from_two_connections_lease_once(
    journal: Journal, open_more: OpenJournal
) -> None:
    """Two pollers (two connections) fetching the same document at once: exactly one gets it."""
    record = await stored(journal)
    other = await open_more()
    results = await asyncio.gather(
        *(
            inbox_of(j).inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
            for j in (journal, other, journal, other)
        )
    )
    assert sum(r is not None for r in results) == 1


async def test_unacknowledged_pickup_is_escalated_to_dead(journal: Journal) -> None:
    """A document fetched and never acknowledged past the age is DEAD with a reason."""
    record = await stored(journal)
    never_fetched = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    age = timedelta(seconds=300)
    assert await inbox.inbox_escalate("TH", at=at(100), older_than=age) == []  # too young
    assert await inbox.inbox_escalate("TH", at=at(400), older_than=age) == [record.message_id]
    assert await waiting_ids(inbox, "TH", 400) == [never_fetched.message_id]
    assert await inbox.inbox_ack("TH", record.message_id, at=at(401)) is InboxAck.UNKNOWN
    view = await journal.get(record.message_id)
    assert view is not None
    assert view.summary.state is MessageState.DEAD
    assert view.timeline[-1].error_code == "pickup-not-acknowledged"
    dead = await journal.list_messages(state=MessageState.DEAD)
    assert [m.record.message_id for m in dead] == [record.message_id]
    assert await inbox.inbox_escalate("TH", at=at(500), older_than=age) == []


async def test_escalation_waits_for_a_live_lease_and_skips_other_parties(
    journal: Journal,
) -> None:
    """A document under a live lease, or another party's, is not escalated."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(350), lease=LEASE)
    age = timedelta(seconds=300)
    assert await inbox.inbox_escalate("TH", at=at(400), older_than=age) == []
    assert await inbox.inbox_escalate("MY", at=at(500), older_than=age) == []
    assert await inbox.inbox_escalate("TH", at=at(410), older_than=age) == [record.message_id]


async def test_another_partys_document_cannot_be_fetched_or_acked(journal: Journal) -> None:
    """MY cannot fetch or acknowledge a document waiting for TH."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    assert await inbox.inbox_fetch("MY", record.message_id, at=at(20), lease=LEASE) is None
    assert await inbox.inbox_ack("MY", record.message_id, at=at(20)) is InboxAck.UNKNOWN
    assert await waiting_ids(inbox, "TH", 21) == [record.message_id]


async def test_ack_removes_for_good_and_repeats_are_recognised(journal: Journal) -> None:
    """An acknowledged document is gone; a second ack says ALREADY_ACKED."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    assert await inbox.inbox_ack("TH", record.message_id, at=at(21)) is InboxAck.ACKED
    assert await inbox.inbox_ack("TH", record.message_id, at=at(22)) is InboxAck.ALREADY_ACKED
    assert await waiting_ids(inbox, "TH", 1000) == []
    assert await inbox.inbox_fetch("TH", record.message_id, at=at(23), lease=LEASE) is None
    assert not await inbox.inbox_store(record.message_id, receiver="TH", at=at(24))
    assert await waiting_ids(inbox, "TH", 1000) == []


async def test_ack_of_unknown_message(journal: Journal) -> None:
    """Acknowledging something that never was in the inbox is UNKNOWN."""
    assert await inbox_of(journal).inbox_ack("TH", "nothing", at=at(1)) is InboxAck.UNKNOWN


async def test_ack_after_lease_expired_still_counts(journal: Journal) -> None:
    """A late acknowledgement (lease run out, nobody fetched since) is accepted."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    assert await inbox.inbox_ack("TH", record.message_id, at=at(500)) is InboxAck.ACKED


async def test_fetch_needs_positive_lease(journal: Journal) -> None:
    """A zero lease is a caller bug."""
    record = await stored(journal)
    with pytest.raises(ValueError, match="lease"):
        await inbox_of(journal).inbox_fetch("TH", record.message_id, at=at(20), lease=timedelta(0))


async def test_inbox_row_goes_with_purged_message(journal: Journal) -> None:
    """Purging a message removes it from the inbox too."""
    record = await stored(journal)
    assert await journal.purge_older_than(at(3600)) == 1
    assert await waiting_ids(inbox_of(journal), "TH", 3600) == []
    assert await journal.get(record.message_id) is None


async def test_inbox_leaves_message_state_alone(journal: Journal) -> None:
    """Storing, fetching and acking never move the message; the caller marks it delivered."""
    record = await stored(journal)
    inbox = inbox_of(journal)
    await inbox.inbox_fetch("TH", record.message_id, at=at(20), lease=LEASE)
    await inbox.inbox_ack("TH", record.message_id, at=at(21))
    view = await journal.get(record.message_id)
    assert view is not None
    assert view.summary.state is MessageState.ACCEPTED


async def test_concurrent_stores_from_two_connections_store_once(
    journal: Journal, open_more: OpenJournal
) -> None:
    """Two processes handing over the same message: exactly one store wins."""
    record = await accept(journal)
    other = await open_more()
    results = await asyncio.gather(
        *(
            inbox_of(j).inbox_store(record.message_id, receiver="TH", at=at(10))
            for j in (journal, other, journal, other)
        )
    )
    assert sorted(results) == [False, False, False, True]


async def test_concurrent_acks_ack_once(journal: Journal, open_more: OpenJournal) -> None:
    """Two acknowledgements racing: one ACKED, the other ALREADY_ACKED."""
    record = await stored(journal)
    other = await open_more()
    results = await asyncio.gather(
        inbox_of(journal).inbox_ack("TH", record.message_id, at=at(20)),
        inbox_of(other).inbox_ack("TH", record.message_id, at=at(20)),
    )
    assert sorted(r.value for r in results) == ["acked", "already-acked"]


async def test_retransmitted_copy_is_an_entry_of_its_own(journal: Journal) -> None:
    """An e-Form D sent again waits under the request's id, marked with the e-Form D's, with the
    e-Form D's facts and bytes; fetched and acked on its own, the first entry stays acked."""
    formd = await stored(journal)
    inbox = inbox_of(journal)
    assert await inbox.inbox_ack("TH", formd.message_id, at=at(12)) is InboxAck.ACKED
    request_payload = b"<RTR/>"
    request = make_record(request_payload, sender="TH", receiver="SG", document_type="RTR")
    await journal.record_accepted(request, request_payload, at=at(20))
    assert await inbox.inbox_store(
        request.message_id, receiver="TH", at=at(21), retransmission_of=formd.message_id
    )
    assert not await inbox.inbox_store(
        request.message_id, receiver="TH", at=at(22), retransmission_of=formd.message_id
    )
    [item] = await inbox.inbox_waiting("TH", at=at(23))
    assert (item.message_id, item.retransmission_of) == (request.message_id, formd.message_id)
    assert (item.sender, item.document_type, item.size) == ("SG", "EFD", len(PAYLOAD))
    document = await inbox.inbox_fetch("TH", request.message_id, at=at(24), lease=LEASE)
    assert document is not None
    assert document.payload == PAYLOAD
    assert document.item.retransmission_of == formd.message_id
    assert await inbox.inbox_ack("TH", request.message_id, at=at(25)) is InboxAck.ACKED
    assert await inbox.inbox_ack("TH", formd.message_id, at=at(26)) is InboxAck.ALREADY_ACKED
    assert await inbox.inbox_fetch("TH", formd.message_id, at=at(27), lease=LEASE) is None
