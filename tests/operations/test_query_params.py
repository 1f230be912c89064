"""The one parser of query parameters: a bad value is refused naming it, absent is None."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import MultiDict

from gateway import query
from gateway.core.states import MessageState
from gateway.errors import ParameterInvalid

Reader = Callable[[MultiDict[str]], Any]

READERS: dict[str, Reader] = {
    "limit": lambda q: query.int_param(q, "limit", 100, 1, 500, clamp=True),
    "test": lambda q: query.bool_param(q, "test"),
    "since": lambda q: query.datetime_param(q, "since"),
    "sender": lambda q: query.party_param(q, "sender"),
    "state": lambda q: query.state_param(q, "state"),
    "document_id": lambda q: query.text_param(q, "document_id"),
    "code": lambda q: query.code_param(q, "code"),
    "message_id": lambda q: query.message_id_param(q, "message_id"),
    "document_type": lambda q: query.document_type_param(q, "document_type"),
    "cursor": query.cursor_param,
    "format": lambda q: query.choice_param(q, "format", ("csv", "json")),
}


@pytest.mark.parametrize(
    ("name", "good", "value"),
    [
        ("limit", "9999", 500),
        ("test", "TRUE", True),
        ("since", "2026-03-01T12:00:00+07:00", datetime(2026, 3, 1, 5, tzinfo=UTC)),
        ("sender", "TH", "TH"),
        ("state", "dead", MessageState.DEAD),
        ("document_id", "SG-1", "SG-1"),
        ("code", "schema-violation", "schema-violation"),
        ("message_id", "0f8fad5b-d9cb-469f-a165-70867728950e", None),
        ("document_type", "EFD", "EFD"),
        ("format", "csv", "csv"),
    ],
)
def test_a_good_value_is_read(name: str, good: str, value: Any) -> None:
    """Each parameter reads its good value (and is None, or its default, when absent)."""
    assert READERS[name](MultiDict({name: good})) == (good if value is None else value)
    assert READERS[name](MultiDict()) in (None, 100)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("limit", "0"),
        ("limit", "ten"),
        ("test", "yes"),
        ("since", "yesterday"),
        ("sender", "th"),
        ("state", "lost"),
        ("document_id", "x" * 201),
        ("code", "Schema_Violation"),
        ("message_id", "0F8FAD5B-D9CB-469F-A165-70867728950E"),
        ("document_type", "PDF"),
        ("cursor", "bm90IGEgY3Vyc29y"),
        ("cursor", "%%%"),
        ("format", "xml"),
    ],
)
def test_a_bad_value_is_parameter_invalid_naming_it(name: str, bad: str) -> None:
    """A malformed value is 400 parameter-invalid with the parameter's name, never replaced."""
    with pytest.raises(ParameterInvalid) as caught:
        READERS[name](MultiDict({name: bad}))
    assert caught.value.extensions == {"parameter": name}
    assert name in caught.value.detail


def test_a_cursor_round_trips() -> None:
    """The cursor a next link carries reads back as the row it was made from."""
    at = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
    cursor = query.cursor_param(MultiDict({"cursor": query.encode_cursor(at, "k-1")}))
    assert cursor is not None
    assert (cursor.at, cursor.key) == (at, "k-1")
