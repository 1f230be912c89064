"""PostgreSQL: connections lent from one operation to the next, and what happens when one breaks."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from gateway.core.states import MessageState
from gateway.errors import JournalUnavailable
from gateway.journal import AcceptResult, open_journal
from tests.journal.conftest import POSTGRES_URL, T0, make_record

pytestmark = pytest.mark.parametrize("journal_url", ["postgres"], indirect=True)


async def test_operations_beyond_the_lending_limit_all_complete(journal_url: str) -> None:
    """With one connection to lend (pool of 3), 40 concurrent operations each get their answer."""
    journal = await open_journal(f"{journal_url}&pool_max_size=3")
    try:
        records = [make_record(f"<doc n='{i}'/>".encode()) for i in range(40)]
        outcomes = await asyncio.gather(
            *(
                journal.record_accepted(r, f"<doc n='{i}'/>".encode(), at=T0)
                for i, r in enumerate(records)
            )
        )
        assert {o.result for o in outcomes} == {AcceptResult.ACCEPTED}
        moved = await asyncio.gather(
            *(journal.transition(r.message_id, MessageState.QUEUED, at=T0) for r in records)
        )
        assert all(moved)
    finally:
        await journal.close()


async def test_a_broken_connection_fails_one_operation_and_is_replaced(journal_url: str) -> None:
    """Backends killed under the journal: an operation may fail as unavailable, later ones work."""
    name = f"asw-lending-{uuid.uuid4().hex[:8]}"  # to kill this journal's backends only
    journal = await open_journal(f"{journal_url}&pool_max_size=4&application_name={name}")
    try:
        first = make_record(b"<first/>")
        await journal.record_accepted(first, b"<first/>", at=T0)
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            )
            assert await cursor.fetchall()  # there was at least one to kill
        failures = 0
        for _ in range(6):  # every connection lent before may be a dead one, once
            try:
                await journal.transition(first.message_id, MessageState.QUEUED, at=T0)
                break
            except JournalUnavailable:
                failures += 1
        assert failures < 6
        records = [make_record(f"<after n='{i}'/>".encode()) for i in range(20)]
        outcomes = await asyncio.gather(
            *(
                journal.record_accepted(r, f"<after n='{i}'/>".encode(), at=T0)
                for i, r in enumerate(records)
            )
        )
        assert {o.result for o in outcomes} == {AcceptResult.ACCEPTED}  # no lending slot leaked
    finally:
        await journal.close()


async def test_a_cancelled_wait_leaks_no_connection(journal_url: str) -> None:
    """Operations cancelled while waiting for a connection leave the lending count intact."""
    journal = await open_journal(f"{journal_url}&pool_max_size=3")
    try:
        records = [make_record(f"<c n='{i}'/>".encode()) for i in range(30)]
        tasks = [
            asyncio.create_task(journal.record_accepted(r, f"<c n='{i}'/>".encode(), at=T0))
            for i, r in enumerate(records)
        ]
        await asyncio.sleep(0)
        for task in tasks[5:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        again = make_record(b"<again/>")
        outcome = await asyncio.wait_for(journal.record_accepted(again, b"<again/>", at=T0), 10)
        assert outcome.result is AcceptResult.ACCEPTED
    finally:
        await journal.close()
