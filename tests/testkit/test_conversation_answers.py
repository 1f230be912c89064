"""What the simulated issuing NSW answers to a rejection: a clarification that repeats which
document was rejected (an e-Form D or an Origin Declaration) and passes the gateway's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from asw_toolkit.conversation_answers import build_answer
from gateway.core.envelope import read_envelope
from gateway.core.parsing import parse
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sample", "type_code", "receiver"),
    [
        ("th-sg-formd-items-rejected.xml", "EFD", "TH"),
        ("my-sg-origin-declaration-rejected.xml", "OD", "MY"),
    ],
)
def test_a_rejection_is_clarified_for_the_document_it_rejected(
    sample: str, type_code: str, receiver: str
) -> None:
    """The clarification goes back to the rejecting side, names the same document and type,
    explains each rejected item, and is valid with no findings."""
    request = parse((ROOT / "samples" / "rejection" / "valid" / sample).read_bytes())
    envelope = read_envelope(request)
    answer = build_answer(request, envelope, now=NOW)
    assert answer is not None
    message_id, data = answer
    root = parse(data)
    report = Validator.load(ROOT / "xsd").check(root, now=NOW)
    assert report.schema_valid and report.findings == (), report.findings
    clarified = read_envelope(root)
    assert clarified.message_id == message_id
    assert clarified.referenced_message_id == envelope.message_id
    assert clarified.receiver.country == receiver
    assert root.findtext("{*}Response/{*}Declaration/{*}TypeCode") == type_code
