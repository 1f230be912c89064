"""Group commit on PostgreSQL: concurrent hot-path writes share transactions, each caller
hears only after its batch committed, and a failing write fails only its own caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from gateway.core.states import MessageState
from gateway.errors import JournalUnavailable
from gateway.journal import AcceptResult, Journal, open_journal
from gateway.journal.postgres import PostgresJournal, split_url
from tests.journal.conftest import T0, at, fresh_postgres_journal, make_record


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL journal's URL."""
    async with fresh_postgres_journal() as url:
        yield url


async def _open(url: str) -> PostgresJournal:
    journal = await open_journal(url)
    assert isinstance(journal, PostgresJournal)
    return journal


async def _accept(journal: Journal, n: int) -> str:
    payload = f"<EFormD n='{n}'/>".encode()
    entry = make_record(payload)
    outcome = await journal.record_accepted(entry, payload, at=T0)
    assert outcome.result is AcceptResult.ACCEPTED
    return entry.message_id


async def test_concurrent_writes_share_batches_and_are_durable_on_return(
    postgres_url: str,
) -> None:
    """Fifty concurrent accepts commit in fewer transactions than writes, and each accepted
    message is visible to another connection the moment its caller hears back."""
    journal = await _open(postgres_url)
    other = await open_journal(postgres_url)
    try:
        group = journal.group_commit
        assert group is not None

        async def accept_and_look(n: int) -> None:
            message_id = await _accept(journal, n)
            seen = await other.get(message_id)  # another connection, right away
            assert seen is not None
            assert seen.summary.state is MessageState.ACCEPTED

        await asyncio.gather(*(accept_and_look(n) for n in range(50)))
        assert group.writes >= 50
        assert group.batches < group.writes  # writes really travelled together
    finally:
        await other.close()
        await journal.close()


async def test_a_failing_write_fails_only_its_own_caller(postgres_url: str) -> None:
    """One statement the server refuses (an attempt number out of range) among nineteen good
    transitions in the same batch: the nineteen are written, the one gets its own error."""
    journal = await _open(postgres_url)
    try:
        ids = [await _accept(journal, n) for n in range(20)]
        group = journal.group_commit
        assert group is not None
        bad = ids[7]

        async def queue(message_id: str) -> bool:
            attempt = 2**40 if message_id == bad else None
            return await journal.transition(
                message_id, MessageState.QUEUED, at=at(1), attempt=attempt
            )

        results = await asyncio.gather(*(queue(i) for i in ids), return_exceptions=True)
        assert group.splits >= 1  # the batch failed whole and was run again write by write
        for message_id, result in zip(ids, results, strict=True):
            view = await journal.get(message_id)
            assert view is not None
            if message_id == bad:
                assert isinstance(result, JournalUnavailable)
                assert "NumericValueOutOfRange" in result.detail
                assert view.summary.state is MessageState.ACCEPTED
            else:
                assert result is True
                assert view.summary.state is MessageState.QUEUED
    finally:
        await journal.close()


async def test_claims_in_one_batch_grant_exactly_one(postgres_url: str) -> None:
    """Twenty concurrent claims of one message, batched: exactly one is granted."""
    journal = await _open(postgres_url)
    try:
        message_id = await _accept(journal, 0)
        results = await asyncio.gather(
            *(journal.claim_delivery(message_id, at=at(2)) for _ in range(20))
        )
        assert sum(r.granted for r in results) == 1
    finally:
        await journal.close()


async def test_group_commit_can_be_turned_off(postgres_url: str) -> None:
    """``group_commit=off`` in the URL writes each statement alone, with the same results."""
    journal = await _open(f"{postgres_url}&group_commit=off")
    try:
        assert journal.group_commit is None
        message_id = await _accept(journal, 0)
        assert await journal.transition(message_id, MessageState.QUEUED, at=at(1))
        assert (await journal.claim_delivery(message_id, at=at(2))).granted
        assert await journal.mark_delivered(message_id, at=at(3))
    finally:
        await journal.close()


def test_group_parameters_are_read_from_the_url_and_not_passed_to_libpq() -> None:
    """The journal's own URL parameters are taken out; a wrong switch is refused."""
    conninfo, sizes, group = split_url(
        "postgresql://gw@db/asw?pool_max_size=20&group_window_ms=2&group_flushers=4&sslmode=require"
    )
    assert conninfo == "postgresql://gw@db/asw?sslmode=require"
    assert sizes == {"pool_max_size": 20}
    assert (group.enabled, group.window_ms, group.flushers) == (True, 2.0, 4)
    with pytest.raises(ValueError, match="group_commit"):
        split_url("postgresql://gw@db/asw?group_commit=maybe")


async def test_payloads_are_compressed_with_lz4(postgres_url: str) -> None:
    """A journal opened on PostgreSQL stores new payloads lz4-compressed, and reads them back
    byte for byte."""
    journal = await _open(postgres_url)
    try:
        payload = b"<EFormD>" + b"<Item>rice</Item>" * 400 + b"</EFormD>"
        entry = make_record(payload)
        outcome = await journal.record_accepted(entry, payload, at=T0)
        assert outcome.result is AcceptResult.ACCEPTED
        assert await journal.payload(entry.message_id) == payload
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cur = await conn.execute(
                "SELECT pg_column_compression(body) FROM payloads WHERE message_id = %s",
                (entry.message_id,),
            )
            assert await cur.fetchone() == ("lz4",)
    finally:
        await journal.close()
