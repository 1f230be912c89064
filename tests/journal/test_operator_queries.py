"""The operator side of the journal on both backends: refusals, search with cursors, retention."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.core.states import MessageState
from gateway.journal import Journal
from gateway.journal.contract import Cursor, MessageQuery, Refusal, RefusalQuery
from gateway.journal.migrations import migrate
from gateway.journal.tables import SCHEMA_VERSION
from tests.journal.conftest import at, make_record


def refusal(**overrides: object) -> Refusal:
    """A REJECTED refusal from SG to TH at the test epoch; keywords override fields."""
    values: dict[str, object] = {
        "refusal_id": str(uuid.uuid4()),
        "state": MessageState.REJECTED,
        "at": at(0),
        "channel": "http",
        "caller": "SG",
        "message_id": str(uuid.uuid4()),
        "sender": "SG",
        "receiver": "TH",
        "document_type": "EFD",
        "document_id": "SG-1",
        "test": False,
        "size": 3,
        "digest": hashlib.sha256(b"abc").hexdigest(),
        "error_code": "schema-invalid",
        "status": 422,
        "detail": "bad",
        "findings": ({"rule": "x", "message": "y"},),
    }
    values.update(overrides)
    return Refusal(**values)  # type: ignore[arg-type]


async def test_refusal_is_recorded_with_bounded_payload_and_read_back(journal: Journal) -> None:
    """A refusal reads back as written; the bytes are kept only when given."""
    kept, digest_only = refusal(), refusal(sender="MY", error_code="signature-invalid")
    await journal.record_refusal(kept, b"abc")
    await journal.record_refusal(digest_only, None)
    got = await journal.get_refusal(kept.refusal_id)
    assert got is not None
    assert got.payload_kept is True
    assert (got.sender, got.error_code, got.findings) == ("SG", "schema-invalid", kept.findings)
    assert got.at == kept.at
    assert await journal.refusal_payload(kept.refusal_id) == b"abc"
    other = await journal.get_refusal(digest_only.refusal_id)
    assert other is not None and other.payload_kept is False
    assert await journal.refusal_payload(digest_only.refusal_id) is None
    assert await journal.get_refusal(str(uuid.uuid4())) is None


async def test_refused_message_id_does_not_block_a_valid_submission(journal: Journal) -> None:
    """A message id refused once is accepted later: refusals live beside messages."""
    record = make_record(b"<doc/>")
    await journal.record_refusal(refusal(message_id=record.message_id), None)
    outcome = await journal.record_accepted(record, b"<doc/>", at=at(1))
    assert outcome.result.value == "accepted"


async def test_refusals_filter_by_sender_code_and_page_newest_first(journal: Journal) -> None:
    """Refusals filter by sender and code and page with a cursor, newest first, no repeats."""
    for i in range(5):
        await journal.record_refusal(refusal(at=at(i)), None)
    await journal.record_refusal(refusal(at=at(9), sender="MY", error_code="other"), None)
    first = await journal.list_refusals(RefusalQuery(sender="SG", limit=3))
    assert [r.at for r in first] == [at(4), at(3), at(2)]
    rest = await journal.list_refusals(
        RefusalQuery(sender="SG", limit=3, after=Cursor(first[-1].at, first[-1].refusal_id))
    )
    assert [r.at for r in rest] == [at(1), at(0)]
    assert [r.sender for r in await journal.list_refusals(RefusalQuery(error_code="other"))] == [
        "MY"
    ]
    counts = {(c.sender, c.error_code): c.count for c in await journal.refusal_counts()}
    assert counts == {("SG", "schema-invalid"): 5, ("MY", "other"): 1}


async def test_search_by_document_number_window_party_and_cursor(journal: Journal) -> None:
    """Messages are found by document id, type, party and window; pages never repeat a row."""
    ids = []
    for i in range(6):
        record = make_record(b"<d/>", received_at=at(i), receiver="TH" if i % 2 else "MY")
        await journal.record_accepted(record, b"<d/>", at=at(i))
        ids.append(record)
    target = ids[3]
    found = await journal.search_messages(MessageQuery(document_id=target.document_id))
    assert [m.record.message_id for m in found] == [target.message_id]
    window = await journal.search_messages(MessageQuery(since=at(1), until=at(4)))
    assert [m.record.received_at for m in window] == [at(3), at(2), at(1)]
    th = await journal.search_messages(MessageQuery(party="TH", limit=2))
    assert [m.record.received_at for m in th] == [at(5), at(3)]
    after = Cursor(th[-1].record.received_at, th[-1].record.message_id)
    more = await journal.search_messages(MessageQuery(party="TH", limit=2, after=after))
    assert [m.record.received_at for m in more] == [at(1)]
    assert await journal.search_messages(MessageQuery(document_type="ACDD")) == []
    assert await journal.search_messages(MessageQuery(state=MessageState.ACCEPTED, limit=0)) == []


async def test_dead_letters_are_ordered_by_time_of_death_and_can_be_discarded(
    journal: Journal,
) -> None:
    """Ordered by the last change, dead letters filter by reason; DISCARDED keeps the entry."""
    first, second = make_record(b"<a/>"), make_record(b"<a/>")
    for record, died in ((first, 20), (second, 10)):
        await journal.record_accepted(record, b"<a/>", at=at(1))
        await journal.transition(record.message_id, MessageState.DEAD, at=at(died), error_code="r")
    dead = await journal.search_messages(
        MessageQuery(state=MessageState.DEAD, error_code="r", order="changed")
    )
    assert [m.record.message_id for m in dead] == [first.message_id, second.message_id]
    assert await journal.transition(second.message_id, MessageState.DISCARDED, at=at(30))
    view = await journal.get(second.message_id)
    assert view is not None and view.summary.state is MessageState.DISCARDED
    dead = await journal.search_messages(MessageQuery(state=MessageState.DEAD, order="changed"))
    assert [m.record.message_id for m in dead] == [first.message_id]


async def test_retention_reads_and_purges_only_what_is_older(journal: Journal) -> None:
    """Rows back-dated to 2020 are listed as expired and purged; newer rows are untouched."""
    old_time = datetime(2020, 3, 1, tzinfo=UTC)
    old = [make_record(b"<o/>", received_at=old_time) for _ in range(3)]
    for record in old:
        await journal.record_accepted(record, b"<o/>", at=old_time)
    new = make_record(b"<n/>")
    await journal.record_accepted(new, b"<n/>", at=at(0))
    old_refusal, new_refusal = refusal(at=old_time), refusal()
    await journal.record_refusal(old_refusal, b"abc")
    await journal.record_refusal(new_refusal, b"abc")
    cutoff = at(0) - timedelta(days=1)
    expired = await journal.expired_messages(cutoff, after=None, limit=2)
    assert len(expired) == 2
    rest = await journal.expired_messages(cutoff, after=expired[-1].record.message_id, limit=2)
    assert {m.record.message_id for m in [*expired, *rest]} == {r.message_id for r in old}
    refused = await journal.expired_refusals(cutoff, after=None, limit=10)
    assert [(r.refusal_id, body) for r, body in refused] == [(old_refusal.refusal_id, b"abc")]
    ids = [r.message_id for r in old]
    assert await journal.purge_messages([*ids, new.message_id], cutoff) == 3
    assert (
        await journal.purge_refusals([old_refusal.refusal_id, new_refusal.refusal_id], cutoff) == 1
    )
    assert await journal.get(new.message_id) is not None
    assert await journal.get(old[0].message_id) is None
    assert await journal.payload(old[0].message_id) is None
    assert await journal.get_refusal(new_refusal.refusal_id) is not None


def test_migration_0004_adds_the_refusals_table_to_an_older_journal(tmp_path: Path) -> None:
    """``journal migrate`` gives a version-1 journal the refusals table and the new index."""
    path = tmp_path / "journal.db"
    shutil.copyfile(Path(__file__).resolve().parent / "data" / "journal-v1.db", path)
    path.chmod(0o600)
    assert migrate(f"sqlite://{path}")[1] == SCHEMA_VERSION >= 4
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"refusals", "refusals_sender", "refusals_code", "messages_document_id"} <= names
