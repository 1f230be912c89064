"""The metrics module's own parts: bounded labels, the timed journal, the multiprocess dir."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway import metrics
from gateway.auth import path_kind
from gateway.core.states import MessageState
from gateway.journal import MessageRecord, SqliteJournal
from gateway.journal.contract import Journal


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_labels_are_bounded() -> None:
    """Anything but a country code, catalogue type or kebab code becomes ``unknown``."""
    assert metrics.country_label("TH") == "TH"
    assert metrics.country_label("th") == "unknown"
    assert metrics.country_label("6f1c2d3e-4a5b") == "unknown"
    assert metrics.country_label(None) == "unknown"
    assert metrics.document_type_label("EFD") == "EFD"
    assert metrics.document_type_label("SG26-CO-0012345") == "unknown"
    assert metrics.code_label("schema-violation") == "schema-violation"
    assert metrics.code_label("Schema Violation: <x>") == "unknown"
    assert metrics.channel_label("http") == "http"
    assert metrics.channel_label("anything/else") == "other"


async def test_timed_journal_times_each_operation(tmp_path: Path) -> None:
    """Every journal call through the wrapper lands in the histogram, by operation and outcome."""
    journal: Journal = metrics.timed_journal(await SqliteJournal.open(str(tmp_path / "j.db")))
    name = "asw_journal_operation_seconds_count"
    before_ok = _sample(name, operation="record_accepted", outcome="ok")
    before_error = _sample(name, operation="transition", outcome="error")
    now = datetime.now(UTC)
    payload = b"<FormD/>"
    record = MessageRecord(
        message_id="0b7c2a4e-9f1d-4d5e-8a6b-3c2d1e0f9a8b",
        sender="SG",
        receiver="TH",
        document_type="FormD",
        document_id="SG26-CO-UNIT",
        function_code="9",
        referenced_message_id=None,
        test=False,
        size=len(payload),
        digest=hashlib.sha256(payload).hexdigest(),
        received_at=now,
    )
    try:
        await journal.record_accepted(record, payload, at=now)
        with pytest.raises(Exception):  # noqa: B017, PT011  (an unknown message id)
            await journal.transition(
                "00000000-0000-4000-8000-000000000000", MessageState.QUEUED, at=now
            )
        assert (await journal.counts()).by_state()[MessageState.ACCEPTED] == 1
    finally:
        await journal.close()
    assert _sample(name, operation="record_accepted", outcome="ok") == before_ok + 1
    assert _sample(name, operation="transition", outcome="error") == before_error + 1


def test_supervisor_gives_each_run_a_fresh_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured directory is emptied of an earlier run's files; otherwise one is made."""
    configured = tmp_path / "prom"
    configured.mkdir()
    (configured / "counter_4242.db").write_bytes(b"stale")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(configured))
    assert metrics.prepare_multiprocess_dir() == configured
    assert list(configured.iterdir()) == []
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    made = metrics.prepare_multiprocess_dir()
    try:
        assert made.is_dir()
        assert made.name.startswith("asw-metrics-")
        assert Path(os.environ[metrics.MULTIPROC_ENV]) == made
    finally:
        metrics.remove_multiprocess_dir(made)
    assert not made.exists()
    metrics.remove_multiprocess_dir(configured)  # an operator's directory is never removed
    assert configured.is_dir()


def test_metrics_is_an_operator_endpoint() -> None:
    """/metrics shows every partner's numbers: only the operator may read it, never a party."""
    assert path_kind("/metrics") == "operator"
