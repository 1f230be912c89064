"""Query parameters of the HTTP API: the one parser every route reads them with.

Every value is checked; a malformed one is ``400 parameter-invalid`` naming the parameter and
what it must be (``extensions.parameter``). An absent parameter is None (or the default given),
never guessed at. Paging is an opaque ``cursor`` (``encode_cursor`` writes the one a ``next``
link carries) and a ``limit``; time windows are ``since`` (inclusive) and ``until`` (exclusive).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import TypeVar

from multidict import MultiMapping

from gateway.core.envelope import MEMBER_STATES, DocumentType
from gateway.core.states import MessageState
from gateway.errors import ParameterInvalid
from gateway.journal.contract import Cursor

MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A message id as the gateway writes it: a UUID in lower case."""
INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
TEXT_MAX = 200
"""Longest free text value (a document number, an id) a query may carry."""
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_DOCUMENT_TYPES = frozenset(t.value for t in DocumentType)

T = TypeVar("T")


def bad_parameter(name: str, expected: str) -> ParameterInvalid:
    """The refusal of parameter ``name``, saying what it must be."""
    return ParameterInvalid(
        f"The query parameter {name!r} must be {expected}.", extensions={"parameter": name}
    )


def _optional(
    query: MultiMapping[str], name: str, read: Callable[[str], T | None], expected: str
) -> T | None:
    """``read`` of the parameter's value, None when absent; a value ``read`` refuses (None or
    ``ValueError``) is ``parameter-invalid`` with ``expected``."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = read(raw)
    except (ValueError, OverflowError) as exc:
        raise bad_parameter(name, expected) from exc
    if value is None:
        raise bad_parameter(name, expected)
    return value


def int_param(
    query: MultiMapping[str], name: str, default: int, low: int, high: int, *, clamp: bool = False
) -> int:
    """An integer parameter from ``low`` to ``high`` (with ``clamp``, larger means ``high``)."""

    def read(raw: str) -> int | None:
        if not INTEGER.fullmatch(raw):
            return None
        value = min(int(raw), high) if clamp else int(raw)
        return value if low <= value <= high else None

    expected = f"a whole number from {low}" + (" up" if clamp else f" to {high}")
    value = _optional(query, name, read, expected)
    return default if value is None else value


def bool_param(query: MultiMapping[str], name: str) -> bool | None:
    """``true`` or ``false`` (any case), or None when absent or empty."""
    if query.get(name) == "":
        return None
    return _optional(
        query, name, lambda raw: {"true": True, "false": False}.get(raw.lower()), "true or false"
    )


def _utc(raw: str) -> datetime | None:
    if len(raw) > 64:
        return None
    value = datetime.fromisoformat(raw)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def datetime_param(query: MultiMapping[str], name: str) -> datetime | None:
    """An ISO 8601 date-time (a time zone offset, or UTC when none), as UTC."""
    return _optional(query, name, _utc, "an ISO 8601 date-time such as 2026-03-01T12:00:00+07:00")


def choice_param(
    query: MultiMapping[str], name: str, choices: Collection[str], expected: str | None = None
) -> str | None:
    """One of ``choices``, exactly as written, or None."""
    return _optional(
        query,
        name,
        lambda raw: raw if raw in choices else None,
        expected or f"one of {', '.join(sorted(choices))}",
    )


def party_param(query: MultiMapping[str], name: str) -> str | None:
    """A member state code (two letters, upper case: "th" is refused, not guessed at), or None."""
    codes = ", ".join(sorted(MEMBER_STATES))
    return choice_param(
        query, name, MEMBER_STATES, f"one of the member state codes {codes} (upper case)"
    )


def state_param(query: MultiMapping[str], name: str) -> MessageState | None:
    """A message state name (any case), or None when absent."""
    names = ", ".join(s.value.lower() for s in MessageState)
    return _optional(query, name, lambda raw: MessageState(raw.upper()), f"one of {names}")


def text_param(query: MultiMapping[str], name: str) -> str | None:
    """A free text value (a document number, an id), 1 to 200 characters, or None."""
    return _optional(
        query,
        name,
        lambda raw: raw if 0 < len(raw) <= TEXT_MAX and raw.isprintable() else None,
        f"1 to {TEXT_MAX} printable characters",
    )


def code_param(query: MultiMapping[str], name: str) -> str | None:
    """An error code (kebab-case, as in problem+json ``code``), or None."""
    return _optional(
        query,
        name,
        lambda raw: raw if 0 < len(raw) <= 64 and set(raw) <= _CODE_CHARS else None,
        "an error code such as schema-violation (lower case, hyphens)",
    )


def message_id_param(query: MultiMapping[str], name: str) -> str | None:
    """A message id (a UUID in lower case), or None."""
    return _optional(
        query,
        name,
        lambda raw: raw if MESSAGE_ID.fullmatch(raw) else None,
        "a message id (a UUID in lower case)",
    )


def document_type_param(query: MultiMapping[str], name: str) -> str | None:
    """A document type code the gateway knows (e.g. EFD), or None."""
    return choice_param(query, name, _DOCUMENT_TYPES)


def _cursor(raw: str) -> Cursor | None:
    try:
        at, key = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=="))
        moment = datetime.fromisoformat(at)
    except (TypeError, UnicodeError) as exc:
        raise ValueError("not a cursor") from exc
    if moment.tzinfo is None or not isinstance(key, str) or len(key) > TEXT_MAX:
        return None  # not a cursor this gateway made
    return Cursor(moment.astimezone(UTC), key)


def cursor_param(query: MultiMapping[str]) -> Cursor | None:
    """The ``cursor`` a previous page's ``next`` link carried, or None."""
    return _optional(query, "cursor", _cursor, "the cursor of a previous page's next link")


def encode_cursor(at: datetime, key: str) -> str:
    """The opaque cursor for the page after the row (``at``, ``key``)."""
    raw = json.dumps([at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def window(query: MultiMapping[str]) -> tuple[datetime | None, datetime | None]:
    """``since`` (inclusive) and ``until`` (exclusive); ``until`` must come after ``since``."""
    since, until = datetime_param(query, "since"), datetime_param(query, "until")
    if since is not None and until is not None and until <= since:
        raise bad_parameter("until", "later than since")
    return since, until
