"""Operator queries both backends share: refusals, search with cursors, retention's reads.

The statements are SQLAlchemy Core expressions on ``gateway.journal.tables``, compiled once per
dialect and combination of filters (``functools.cache``). ``OperatorQueries`` runs them through
two primitives each backend provides (``_select`` and ``_write_each``) and the backend's own
timestamp encoding (``_encode`` and ``_decode``), so SQLite and PostgreSQL answer the same.

Ordering is always a time column, newest first, with the row's id as tie-breaker; a page's last
row is the ``Cursor`` of the next page (keyset paging: stable while rows are added).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from gateway.core.states import MessageState
from gateway.journal import tables
from gateway.journal.contract import (
    Cursor,
    DeadlineFacts,
    DeadlineQuery,
    MessageQuery,
    MessageSummary,
    Refusal,
    RefusalCount,
    RefusalQuery,
)
from gateway.journal.schema import summary_from_row
from gateway.journal.tables import Sql, links, message_states, messages, param, refusals

MESSAGE_ORDERS = {"received": messages.c.received_at, "changed": messages.c.state_at}
"""The orderings ``MessageQuery.order`` names, by their time column."""

_EXACT = ("message_id", "document_id", "document_type", "sender", "receiver")
# A register update (certified exporters, AEO status) stays past retention: the register is read
# as it stood on a declaration's date, and a grant of years ago may still be in force.
_REGISTER_UPDATE = sa.exists().where(tables.register_entries.c.message_id == messages.c.message_id)

REFUSAL_COLUMNS = (
    *(c for c in refusals.c if c.name != "body"),
    refusals.c.body.is_not(None).label("payload_kept"),
)
"""What a refusal row holds without its bytes (whether they are kept instead), in table order."""


def _window(
    column: ColumnElement[Any], key: ColumnElement[Any], names: frozenset[str]
) -> list[ColumnElement[bool]]:
    """Conditions for ``since``, ``until`` and the cursor (``after_at``, ``after_key``)."""
    conditions: list[ColumnElement[bool]] = []
    if "since" in names:
        conditions.append(column >= param("since", column))  # type: ignore[arg-type]
    if "until" in names:
        conditions.append(column < param("until", column))  # type: ignore[arg-type]
    if "after_at" in names:
        after_at = param("after_at", column)  # type: ignore[arg-type]
        conditions.append(
            sa.or_(column < after_at, sa.and_(column == after_at, key < param("after_key")))
        )
    return conditions


@functools.cache
def message_search_sql(dialect: str, names: frozenset[str], order: str) -> Sql:
    """The message search for one combination of filters and one ordering."""
    column = MESSAGE_ORDERS[order]
    conditions: list[ColumnElement[bool]] = [
        messages.c[name] == param(name) for name in _EXACT if name in names
    ]
    if "state" in names:
        conditions.append(messages.c.state == param("state"))
    if "error_code" in names:
        conditions.append(messages.c.last_error_code == param("error_code"))
    if "test" in names:
        conditions.append(messages.c.test == param("test", messages.c.test))
    if "party" in names:
        conditions.append(
            sa.or_(messages.c.sender == param("party"), messages.c.receiver == param("party"))
        )
    conditions += _window(column, messages.c.message_id, names)
    statement = (
        sa.select(*tables.SUMMARY)
        .where(*conditions)
        .order_by(column.desc(), messages.c.message_id.desc())
        .limit(param("limit"))
    )
    return tables.compile_for(dialect, statement)


@functools.cache
def refusal_search_sql(dialect: str, names: frozenset[str]) -> Sql:
    """The refusal search for one combination of filters."""
    conditions: list[ColumnElement[bool]] = [
        refusals.c[name] == param(name) for name in _EXACT if name in names
    ]
    for name, column in (
        ("state", refusals.c.state),
        ("error_code", refusals.c.error_code),
        ("channel", refusals.c.channel),
    ):
        if name in names:
            conditions.append(column == param(name))
    if "party" in names:
        conditions.append(
            sa.or_(refusals.c.sender == param("party"), refusals.c.caller == param("party"))
        )
    conditions += _window(refusals.c.at, refusals.c.refusal_id, names)
    statement = (
        sa.select(*REFUSAL_COLUMNS)
        .where(*conditions)
        .order_by(refusals.c.at.desc(), refusals.c.refusal_id.desc())
        .limit(param("limit"))
    )
    return tables.compile_for(dialect, statement)


@functools.cache
def deadline_page_sql(
    dialect: str,
    names: frozenset[str],
    wanted: tuple[tuple[str, tuple[str, ...]], ...],
    open_only: bool,
) -> Sql:
    """One page of ``deadline_facts``: the messages of the ``wanted`` types (with
    ``open_only``, those lacking a link of one of their relations), oldest first, each with its
    first delivery time, joined to its own links of those relations (one row per link, or one
    with no link): a single read per page."""
    of_types = []
    for doc_type, relations in wanted:
        of_type = messages.c.document_type == tables.const(doc_type)
        missing = [
            ~sa.exists().where(
                links.c.message_id == messages.c.message_id, links.c.relation == tables.const(r)
            )
            for r in relations
        ]
        of_types.append(sa.and_(of_type, sa.or_(*missing)) if open_only and missing else of_type)
    conditions: list[ColumnElement[bool]] = [sa.or_(*of_types)]
    if "document_type" in names:
        conditions.append(messages.c.document_type == param("document_type"))
    if "party" in names:
        conditions.append(
            sa.or_(messages.c.sender == param("party"), messages.c.receiver == param("party"))
        )
    received = messages.c.received_at
    if "received_before" in names:
        conditions.append(received < param("received_before", received))
    if "after_at" in names:
        after_at = param("after_at", received)
        conditions.append(
            sa.or_(
                received > after_at,
                sa.and_(received == after_at, messages.c.message_id > param("after_key")),
            )
        )
    delivered = (
        sa.select(sa.func.min(message_states.c.at))
        .where(
            message_states.c.message_id == messages.c.message_id,
            message_states.c.state == tables.const(MessageState.DELIVERED.value),
        )
        .scalar_subquery()
        .label("delivered_at")
    )
    page = (
        sa.select(*tables.SUMMARY, delivered)
        .where(*conditions)
        .order_by(received, messages.c.message_id)
        .limit(param("limit"))
        .subquery("page")
    )
    read = sorted({r for _, relations in wanted for r in relations})
    joined = sa.and_(
        links.c.message_id == page.c.message_id,
        links.c.relation.in_(sa.bindparam(None, read, expanding=True, literal_execute=True)),
    )
    statement = (
        sa.select(*page.c, links.c.relation, links.c.at)
        .select_from(page.outerjoin(links, joined))
        .order_by(page.c.received_at, page.c.message_id, links.c.at)
    )
    return tables.compile_for(dialect, statement)


def _statements() -> dict[str, sa.sql.ClauseElement]:
    after_id = param("after", messages.c.message_id)
    after_refusal = param("after", refusals.c.refusal_id)
    return {
        "insert_refusal": sa.insert(refusals).values(
            tables.values_of(refusals, [c.name for c in refusals.c])
        ),
        "refusal": sa.select(*REFUSAL_COLUMNS).where(refusals.c.refusal_id == param("refusal_id")),
        "refusal_body": sa.select(refusals.c.body).where(
            refusals.c.refusal_id == param("refusal_id")
        ),
        "refusal_counts": sa.select(
            refusals.c.sender, refusals.c.error_code, refusals.c.state, sa.func.count()
        )
        .group_by(refusals.c.sender, refusals.c.error_code, refusals.c.state)
        .order_by(refusals.c.sender, refusals.c.error_code, refusals.c.state),
        "refusal_counts_live": sa.select(
            refusals.c.sender, refusals.c.error_code, refusals.c.state, sa.func.count()
        )
        .where(sa.or_(refusals.c.test.is_(None), refusals.c.test == tables.const(False)))
        .group_by(refusals.c.sender, refusals.c.error_code, refusals.c.state)
        .order_by(refusals.c.sender, refusals.c.error_code, refusals.c.state),
        "expired_messages": sa.select(*tables.SUMMARY)
        .where(
            messages.c.state_at < param("cutoff", messages.c.state_at),
            ~_REGISTER_UPDATE,
            sa.or_(after_id.is_(None), messages.c.message_id > after_id),
        )
        .order_by(messages.c.message_id)
        .limit(param("limit")),
        "expired_refusals": sa.select(*REFUSAL_COLUMNS, refusals.c.body)
        .where(
            refusals.c.at < param("cutoff", refusals.c.at),
            sa.or_(after_refusal.is_(None), refusals.c.refusal_id > after_refusal),
        )
        .order_by(refusals.c.refusal_id)
        .limit(param("limit")),
        # ON DELETE CASCADE takes the timeline, payload, links and inbox row along.
        "purge_message": sa.delete(messages).where(
            tables.by_id(messages),
            messages.c.state_at < param("cutoff", messages.c.state_at),
            ~_REGISTER_UPDATE,
        ),
        "purge_refusal": sa.delete(refusals).where(
            refusals.c.refusal_id == param("refusal_id"),
            refusals.c.at < param("cutoff", refusals.c.at),
        ),
    }


@functools.cache
def statements(dialect: str) -> dict[str, Sql]:
    """The fixed operator statements compiled for ``dialect``."""
    return tables.compile_all(dialect, _statements())


def _filters(fields: Mapping[str, Any], encode: Any) -> dict[str, Any]:
    """Statement parameters for the fields given (None left out), cursor split in two."""
    given: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or name in ("order", "limit"):
            continue
        if isinstance(value, Cursor):
            given["after_at"], given["after_key"] = encode(value.at), value.key
        elif isinstance(value, datetime):
            given[name] = encode(value)
        elif isinstance(value, MessageState):
            given[name] = value.value
        else:
            given[name] = value
    return given


def _fields(query: MessageQuery | RefusalQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


class OperatorQueries:
    """The ``OperatorJournal`` methods, on a backend's ``_select`` and ``_write_each``."""

    _dialect: str

    def _encode(self, moment: datetime) -> Any:
        raise NotImplementedError

    def _decode(self, value: Any) -> datetime:
        raise NotImplementedError

    async def _select(self, sql: Sql, params: dict[str, Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def _write_each(self, sql: Sql, rows: list[dict[str, Any]]) -> int:
        """Run ``sql`` once per parameter set in one transaction; the rows it touched."""
        raise NotImplementedError

    def _refusal(self, row: Sequence[Any]) -> Refusal:
        values = dict(zip((c.name for c in REFUSAL_COLUMNS), row, strict=True))
        return Refusal(
            refusal_id=values["refusal_id"],
            state=MessageState(values["state"]),
            at=self._decode(values["at"]),
            channel=values["channel"],
            caller=values["caller"],
            message_id=values["message_id"],
            sender=values["sender"],
            receiver=values["receiver"],
            document_type=values["document_type"],
            document_id=values["document_id"],
            test=None if values["test"] is None else bool(values["test"]),
            size=int(values["size"]),
            digest=values["digest"],
            error_code=values["error_code"],
            status=int(values["status"]),
            detail=values["detail"],
            findings=tuple(json.loads(values["findings"])),
            payload_kept=bool(values["payload_kept"]),
        )

    async def record_refusal(self, refusal: Refusal, payload: bytes | None) -> None:
        """See ``OperatorJournal.record_refusal``."""
        if refusal.state not in (MessageState.REJECTED, MessageState.DUPLICATE):
            raise ValueError(f"a refusal is REJECTED or DUPLICATE, not {refusal.state.value}")
        row = {
            "refusal_id": refusal.refusal_id,
            "state": refusal.state.value,
            "at": self._encode(refusal.at),
            "channel": refusal.channel,
            "caller": refusal.caller,
            "message_id": refusal.message_id,
            "sender": refusal.sender,
            "receiver": refusal.receiver,
            "document_type": refusal.document_type,
            "document_id": refusal.document_id,
            "test": refusal.test,
            "size": refusal.size,
            "digest": refusal.digest,
            "error_code": refusal.error_code,
            "status": refusal.status,
            "detail": refusal.detail,
            "findings": json.dumps(list(refusal.findings), ensure_ascii=False),
            "body": payload,
        }
        await self._write_each(statements(self._dialect)["insert_refusal"], [row])

    async def get_refusal(self, refusal_id: str) -> Refusal | None:
        """See ``OperatorJournal.get_refusal``."""
        sql = statements(self._dialect)["refusal"]
        rows = await self._select(sql, sql.params(refusal_id=refusal_id))
        return self._refusal(rows[0]) if rows else None

    async def refusal_payload(self, refusal_id: str) -> bytes | None:
        """See ``OperatorJournal.refusal_payload``."""
        sql = statements(self._dialect)["refusal_body"]
        rows = await self._select(sql, sql.params(refusal_id=refusal_id))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])

    async def list_refusals(self, query: RefusalQuery) -> list[Refusal]:
        """See ``OperatorJournal.list_refusals``."""
        given = _filters(_fields(query), self._encode)
        sql = refusal_search_sql(self._dialect, frozenset(given))
        rows = await self._select(sql, sql.params(**given, limit=max(0, query.limit)))
        return [self._refusal(row) for row in rows]

    async def refusal_counts(self, *, include_test: bool = False) -> list[RefusalCount]:
        """See ``OperatorJournal.refusal_counts``."""
        sql = statements(self._dialect)["refusal_counts" if include_test else "refusal_counts_live"]
        rows = await self._select(sql, sql.params())
        return [
            RefusalCount(sender=r[0], error_code=r[1], state=MessageState(r[2]), count=int(r[3]))
            for r in rows
        ]

    async def search_messages(self, query: MessageQuery) -> list[MessageSummary]:
        """See ``OperatorJournal.search_messages``."""
        if query.order not in MESSAGE_ORDERS:
            raise ValueError(f"unknown order {query.order!r}")
        given = _filters(_fields(query), self._encode)
        sql = message_search_sql(self._dialect, frozenset(given), query.order)
        rows = await self._select(sql, sql.params(**given, limit=max(0, query.limit)))
        return [summary_from_row(row, self._decode) for row in rows]

    async def deadline_facts(self, query: DeadlineQuery) -> list[DeadlineFacts]:
        """See ``OperatorJournal.deadline_facts``."""
        given = _filters(
            {
                "document_type": query.document_type,
                "party": query.party,
                "received_before": query.received_before,
                "after": query.after,
            },
            self._encode,
        )
        wanted = tuple(sorted((t, tuple(sorted(r))) for t, r in query.relations.items()))
        if not wanted:
            return []
        sql = deadline_page_sql(self._dialect, frozenset(given), wanted, query.open_only)
        rows = await self._select(sql, sql.params(**given, limit=max(0, query.limit)))
        width = len(tables.SUMMARY)
        found: list[DeadlineFacts] = []
        for row in rows:
            if not found or found[-1].summary.record.message_id != row[0]:
                delivered = row[width]
                found.append(
                    DeadlineFacts(
                        summary=summary_from_row(row[:width], self._decode),
                        delivered_at=None if delivered is None else self._decode(delivered),
                        links=(),
                    )
                )
            relation, at = row[width + 1], row[width + 2]
            if relation is not None:
                last = found[-1]
                link = (relation, self._decode(at))
                found[-1] = DeadlineFacts(
                    summary=last.summary,
                    delivered_at=last.delivered_at,
                    links=(*last.links, link),
                )
        return found

    async def expired_messages(
        self, cutoff: datetime, *, after: str | None, limit: int
    ) -> list[MessageSummary]:
        """See ``OperatorJournal.expired_messages``."""
        sql = statements(self._dialect)["expired_messages"]
        params = sql.params(cutoff=self._encode(cutoff), after=after, limit=limit)
        return [summary_from_row(row, self._decode) for row in await self._select(sql, params)]

    async def expired_refusals(
        self, cutoff: datetime, *, after: str | None, limit: int
    ) -> list[tuple[Refusal, bytes | None]]:
        """See ``OperatorJournal.expired_refusals``."""
        sql = statements(self._dialect)["expired_refusals"]
        params = sql.params(cutoff=self._encode(cutoff), after=after, limit=limit)
        found = []
        for row in await self._select(sql, params):
            body = None if row[-1] is None else bytes(row[-1])
            found.append((self._refusal(row[:-1]), body))
        return found

    async def purge_messages(self, message_ids: list[str], cutoff: datetime) -> int:
        """See ``OperatorJournal.purge_messages``."""
        stamp = self._encode(cutoff)
        return await self._write_each(
            statements(self._dialect)["purge_message"],
            [{"message_id": m, "cutoff": stamp} for m in message_ids],
        )

    async def purge_refusals(self, refusal_ids: list[str], cutoff: datetime) -> int:
        """See ``OperatorJournal.purge_refusals``."""
        stamp = self._encode(cutoff)
        return await self._write_each(
            statements(self._dialect)["purge_refusal"],
            [{"refusal_id": r, "cutoff": stamp} for r in refusal_ids],
        )
