"""The register entries of the journal (issue 18): SQLite and PostgreSQL alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.core.registers import (
    CERTIFIED_EXPORTERS,
    ExporterRecord,
    Product,
    RegisterEntry,
)
from gateway.errors import NotFound
from gateway.journal import AcceptResult, Journal
from tests.journal.conftest import at, make_record

PAYLOAD = b"<CertifiedExporterRegisterUpdate/>"

RECORD = ExporterRecord(
    authorisation_id="SGCE000123",
    name="Orchid Fine Foods Pte Ltd",
    exporter_id="201512345K",
    issue_date=date(2026, 3, 1),
    expiry_date=date(2029, 2, 28),
    products=(Product(code="180690", description="Chocolate"),),
    signatories=("Tan Mei Ling", "Rajesh Kumar"),
)


async def _message(journal: Journal) -> str:
    record = make_record(PAYLOAD, document_type="CER", document_id=None)
    outcome = await journal.record_accepted(record, PAYLOAD, at=at(1))
    assert outcome.result is AcceptResult.ACCEPTED
    return record.message_id


def _entry(message_id: str, entry_id: str, action: str, **changes: object) -> RegisterEntry:
    entry = RegisterEntry(
        register=CERTIFIED_EXPORTERS,
        country="SG",
        record_key="SGCE000123",
        entry_id=entry_id,
        action=action,
        effective_date=date(2026, 3, 1),
        record=RECORD if action in ("GRANT", "AMEND") else None,
        reason=None,
        message_id=message_id,
    )
    return replace(entry, **changes)  # type: ignore[arg-type]


async def test_register_entries_come_back_in_recording_order(journal: Journal) -> None:
    """Entries are kept whole (record, reason, dates) and read back in the order recorded."""
    first, second = await _message(journal), await _message(journal)
    grant = _entry(first, "U1", "GRANT")
    suspend = _entry(
        second, "U2", "SUSPEND", effective_date=date(2026, 6, 1), reason="under review"
    )
    assert await journal.register_add(grant, at=at(10))
    assert await journal.register_add(suspend, at=at(20))
    history = await journal.register_history(CERTIFIED_EXPORTERS, "SG")
    assert [replace(e, recorded_at=None) for e in history] == [grant, suspend]
    assert [e.recorded_at for e in history] == [at(10), at(20)]
    one = await journal.register_history(CERTIFIED_EXPORTERS, "SG", "SGCE000123")
    assert one == history
    assert await journal.register_history(CERTIFIED_EXPORTERS, "SG", "OTHER") == []
    assert await journal.register_history(CERTIFIED_EXPORTERS, "MY") == []


async def test_the_same_update_sent_twice_is_one_entry(journal: Journal) -> None:
    """An update id already kept for a country is not kept again (sent to several partners)."""
    first, second = await _message(journal), await _message(journal)
    assert await journal.register_add(_entry(first, "U1", "GRANT"), at=at(10))
    assert not await journal.register_add(_entry(second, "U1", "GRANT"), at=at(11))
    history = await journal.register_history(CERTIFIED_EXPORTERS, "SG")
    assert [e.message_id for e in history] == [first]


async def test_an_entry_needs_its_message(journal: Journal) -> None:
    """An entry for a message the journal does not hold is refused with NotFound."""
    with pytest.raises(NotFound):
        await journal.register_add(_entry("no-such-message", "U1", "GRANT"), at=at(10))


async def test_purging_the_message_purges_its_entries(journal: Journal) -> None:
    """Register entries follow their message's retention (ON DELETE CASCADE)."""
    mid = await _message(journal)
    assert await journal.register_add(_entry(mid, "U1", "GRANT"), at=at(10))
    assert await journal.purge_older_than(at(10_000)) >= 1
    assert await journal.register_history(CERTIFIED_EXPORTERS, "SG") == []
