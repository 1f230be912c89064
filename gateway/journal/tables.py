"""The journal's tables and statements, described once for SQLite and PostgreSQL.

The tables are SQLAlchemy Core ``Table`` objects; where the two databases store a column
differently, the type says so with ``with_variant`` (SQLite keeps timestamps as ISO 8601 text
and flags as integers). Statements are SQLAlchemy expressions built from them, compiled for a
dialect once (``compile_for``) and executed through the backend's own driver (sqlite3 or
psycopg) with named parameters, so the hot path pays for neither building nor compiling SQL,
nor for SQLAlchemy's execution layer (``bench/bench_journal.py`` measures what is left).

Tables (see docs/journal.md):

- ``journal_schema(version, journal_id)``: one row; the schema version (a gateway refuses a
  journal at another version: older ones are brought up with ``asw-gateway journal migrate``,
  see ``gateway.journal.migrations``) and the journal's identity, a random id given when the
  journal is created (or migrated to version 2), the same for every node sharing it.
- ``messages``: one row per accepted message: the ``MessageRecord`` columns, the current
  ``state`` and ``state_at``, ``accepted_at``, the number of delivery ``attempts``, the claim's
  ``lease_until`` and the ``last_error_code``. Unique on the message id, and on the business
  key (sender, document type, document id, function code) where a document id exists.
- ``message_states``: the timeline; ``seq`` orders the rows of one message as written.
- ``payloads``: the accepted bytes, apart so that lists and counts never read them.
- ``links``: ``related_message_id`` is the ``relation`` of ``message_id``; ordered by ``at``,
  then by write order (``seq`` in PostgreSQL, the row id in SQLite, which has no ``seq``).
- ``inbox``: one row per message handed to a pull-inbox receiver: the ``receiver`` it waits
  for, ``stored_at``, the current fetch ``lease_until``, the number of ``fetches`` and
  ``acked_at``. The row goes with its message when the message is purged (ON DELETE CASCADE).
  A re-transmitted e-Form D (OCP Rule 29(3)) waits under the request's id with
  ``retransmission_of`` naming the e-Form D, whose bytes and header it hands over.
- ``audit_log``: append-only, one row per operator action and per view of a stored document
  (who, role, key id, when, what, on which target, why). No statement of the gateway updates or
  deletes it; it is not tied to ``messages``, so purging a message keeps its audit rows.
- ``refusals``: one row per refused submission (state REJECTED or DUPLICATE), apart from
  ``messages`` so that a refused message id never blocks a later valid submission of it: who
  called (``caller``, ``channel``), what could be read of the header (claimed ``message_id``,
  ``sender``, ``receiver``, ``document_type``, ``document_id``, ``test``), ``size``,
  ``digest``, the ``error_code``, HTTP ``status``, ``detail``, the ``findings`` (JSON) and
  the ``body`` when it is no larger than ``journal.refusal_payload_max_bytes`` (else NULL, the
  digest alone). Purged by retention like messages, by ``at``.
- ``register_entries``: one row per register update (issue 18: the certified-exporter register,
  ``register`` = ``certified-exporter``): the issuing ``country``, the ``record_key`` (the
  authorisation code), the update's own ``entry_id``, its ``action`` and ``effective_date``
  (ISO text in both databases), the ``message_id`` that brought it, ``recorded_at`` and the
  record as JSON ``body``. Unique on (register, country, entry_id, record_key): the same update
  sent to several partners is one entry. Purged with its message, like any document.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from gateway.core.lease import grant_states
from gateway.core.states import MessageState

SCHEMA_VERSION = 7
"""The version these tables describe. Changing a table means a new revision in
``gateway/journal/revisions/`` that brings a journal from the previous version to this one and
sets ``journal_schema.version`` (see docs/journal.md, "Schema migrations")."""

PURGE_BATCH = 500
"""Messages deleted per transaction, so a large purge never holds the write lock for long."""

DIALECTS: Mapping[str, Dialect] = {
    "sqlite": sqlite.dialect(paramstyle="named"),
    "postgresql": postgresql.psycopg.dialect(),  # type: ignore[no-untyped-call]
}
"""The dialects the journal compiles for, with the parameter style their driver takes."""

_Stamp = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_Flag = sa.Boolean().with_variant(sa.Integer(), "sqlite")
_Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

journal_schema = sa.Table(
    "journal_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("journal_id", sa.Text),  # version 2
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("message_id", sa.Text, primary_key=True),
    sa.Column("sender", sa.Text, nullable=False),
    sa.Column("receiver", sa.Text, nullable=False),
    sa.Column("document_type", sa.Text, nullable=False),
    sa.Column("document_id", sa.Text),
    sa.Column("function_code", sa.Text, nullable=False),
    sa.Column("referenced_message_id", sa.Text),
    sa.Column("test", _Flag, nullable=False),
    sa.Column("size", _Big, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("received_at", _Stamp, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("state_at", _Stamp, nullable=False),
    sa.Column("accepted_at", _Stamp, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("lease_until", _Stamp),
    sa.Column("last_error_code", sa.Text),
)
sa.Index(
    "messages_business_key",
    messages.c.sender,
    messages.c.document_type,
    messages.c.document_id,
    messages.c.function_code,
    unique=True,
    sqlite_where=messages.c.document_id.is_not(None),
    postgresql_where=messages.c.document_id.is_not(None),
)
sa.Index("messages_received_at", messages.c.received_at)
sa.Index("messages_state_at", messages.c.state_at)
sa.Index("messages_document_id", messages.c.document_id)
# version 6: the deadline list reads the few types that carry OCP limits, oldest first
sa.Index("messages_type_received", messages.c.document_type, messages.c.received_at)


def _message_ref() -> sa.ForeignKey:
    return sa.ForeignKey("messages.message_id", ondelete="CASCADE")


message_states = sa.Table(
    "message_states",
    metadata,
    sa.Column("seq", _Big, sa.Identity(always=True), primary_key=True),
    sa.Column("message_id", sa.Text, _message_ref(), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("at", _Stamp, nullable=False),
    sa.Column("error_code", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("attempt", sa.Integer),
    sqlite_autoincrement=True,
)
sa.Index("message_states_message", message_states.c.message_id, message_states.c.seq)
sa.Index("message_states_at", message_states.c.at)

payloads = sa.Table(
    "payloads",
    metadata,
    sa.Column("message_id", sa.Text, _message_ref(), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), info={"skip_on": "sqlite"}),
    sa.Column("message_id", sa.Text, _message_ref(), primary_key=True),
    sa.Column("related_message_id", sa.Text, primary_key=True),
    sa.Column("relation", sa.Text, primary_key=True),
    sa.Column("at", _Stamp, nullable=False),
)
sa.Index("links_related", links.c.related_message_id)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("message_id", sa.Text, _message_ref(), primary_key=True),
    sa.Column("receiver", sa.Text, nullable=False),
    sa.Column("stored_at", _Stamp, nullable=False),
    sa.Column("lease_until", _Stamp),
    sa.Column("fetches", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("acked_at", _Stamp),
    sa.Column("retransmission_of", sa.Text),
)
sa.Index(
    "inbox_waiting",
    inbox.c.receiver,
    inbox.c.stored_at,
    sqlite_where=inbox.c.acked_at.is_(None),
    postgresql_where=inbox.c.acked_at.is_(None),
)


audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", _Big, sa.Identity(always=True), primary_key=True),
    sa.Column("at", _Stamp, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("role", sa.Text),
    sa.Column("key_id", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("detail", sa.Text),
    sqlite_autoincrement=True,
)
sa.Index("audit_log_at", audit_log.c.at)

AUDIT_COLUMNS = ("at", "actor", "role", "key_id", "action", "target", "reason", "detail")
"""The ``audit_log`` columns an ``AuditEntry`` fills, in its field order (``seq`` is given)."""
refusals = sa.Table(
    "refusals",
    metadata,
    sa.Column("refusal_id", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("at", _Stamp, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("caller", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("sender", sa.Text),
    sa.Column("receiver", sa.Text),
    sa.Column("document_type", sa.Text),
    sa.Column("document_id", sa.Text),
    sa.Column("test", _Flag),
    sa.Column("size", _Big, nullable=False),
    sa.Column("digest", sa.Text),
    sa.Column("error_code", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary),
)
sa.Index("refusals_at", refusals.c.at, refusals.c.refusal_id)
sa.Index("refusals_sender", refusals.c.sender, refusals.c.at)
sa.Index("refusals_code", refusals.c.error_code, refusals.c.at)
sa.Index("refusals_message", refusals.c.message_id)
register_entries = sa.Table(
    "register_entries",
    metadata,
    sa.Column("register", sa.Text, primary_key=True),
    sa.Column("country", sa.Text, primary_key=True),
    sa.Column("entry_id", sa.Text, primary_key=True),
    sa.Column("record_key", sa.Text, primary_key=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("effective_date", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, _message_ref(), nullable=False),
    sa.Column("recorded_at", _Stamp, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
sa.Index(
    "register_entries_record",
    register_entries.c.register,
    register_entries.c.country,
    register_entries.c.record_key,
)

REGISTER_COLUMNS = (
    "register",
    "country",
    "record_key",
    "entry_id",
    "action",
    "effective_date",
    "message_id",
    "recorded_at",
    "body",
)


def register_history_statement(*, by_key: bool) -> sa.Select[Any]:
    """A country's register entries (or one record's) in the order they were recorded."""
    conditions = [
        register_entries.c.register == param("register"),
        register_entries.c.country == param("country"),
    ]
    if by_key:
        conditions.append(register_entries.c.record_key == param("record_key"))
    return (
        sa.select(*(register_entries.c[name] for name in REGISTER_COLUMNS))
        .where(*conditions)
        .order_by(register_entries.c.recorded_at, register_entries.c.entry_id)
    )


@compiles(CreateColumn, "sqlite")
def _skip_column(element: CreateColumn, compiler: Any, **kw: Any) -> str | None:
    """Leave out of SQLite's DDL a column marked ``skip_on: sqlite`` (returning None does)."""
    if element.element.info.get("skip_on") == "sqlite":
        return None
    text: str | None = compiler.visit_create_column(element, **kw)
    return text


class WriteOrder(ColumnElement[int]):
    """The order in which ``links`` rows were written: ``seq``, or SQLite's row id."""

    inherit_cache = True
    type = sa.BigInteger()


@compiles(WriteOrder)
def _write_order(element: WriteOrder, compiler: SQLCompiler, **kw: Any) -> str:
    return "links.seq"


@compiles(WriteOrder, "sqlite")
def _write_order_sqlite(element: WriteOrder, compiler: SQLCompiler, **kw: Any) -> str:
    return "links.rowid"


def ddl(dialect: str) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` for every table, in dependency order."""
    target = DIALECTS[dialect]
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=target)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=target)))
    return statements


# --- compiling ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement compiled for one dialect: its text and the parameters it needs.

    ``constants`` holds the values fixed when the statement was built (states from the state
    table, batch sizes); ``needed`` names the rest, which every call passes to ``params``.
    """

    text: str
    constants: Mapping[str, Any]
    needed: frozenset[str]

    def params(self, **given: Any) -> dict[str, Any]:
        """The parameter mapping for one execution; a missing or unknown name is a bug."""
        if given.keys() != self.needed:
            raise TypeError(f"statement needs {sorted(self.needed)}, was given {sorted(given)}")
        return {**self.constants, **given}


def compile_for(dialect: str, statement: sa.sql.ClauseElement) -> Sql:
    """Compile ``statement`` once for ``dialect`` into SQL text for the driver."""
    compiled = statement.compile(
        dialect=DIALECTS[dialect], compile_kwargs={"render_postcompile": True}
    )
    params = compiled.params
    needed = frozenset(name for name, value in params.items() if value is None)
    constants = {name: value for name, value in params.items() if value is not None}
    return Sql(text=str(compiled), constants=constants, needed=needed)


def compile_all(dialect: str, statements: Mapping[str, sa.sql.ClauseElement]) -> dict[str, Sql]:
    """Compile a set of named statements for ``dialect``."""
    return {name: compile_for(dialect, statement) for name, statement in statements.items()}


def param(name: str, column: sa.Column[Any] | None = None) -> sa.BindParameter[Any]:
    """A named parameter the caller supplies, typed like ``column``.

    Not ``required`` to the compiler, which would refuse to compile without a value; ``Sql``
    checks instead that every call passes it (a fixed value is never None: see ``const``).
    """
    return sa.bindparam(name, type_=None if column is None else column.type, required=False)


def values_of(table: sa.Table, names: Iterable[str]) -> dict[str, sa.BindParameter[Any]]:
    """``{column: parameter of the same name}`` for an INSERT or an UPDATE's SET."""
    return {name: param(name, table.c[name]) for name in names}


def const(value: Any) -> sa.BindParameter[Any]:
    """A value fixed when the statement is built, written into the SQL text at compile time."""
    return sa.literal(value, literal_execute=True)


def states_in(column: ColumnElement[Any], states: Iterable[MessageState]) -> ColumnElement[bool]:
    """``column IN ('A', 'B')`` for fixed states, written into the SQL text."""
    values = sorted(state.value for state in states)
    return column.in_(sa.bindparam(None, values, expanding=True, literal_execute=True))


# --- statements both backends use ----------------------------------------------------------------

RECORD_COLUMNS = (
    "message_id",
    "sender",
    "receiver",
    "document_type",
    "document_id",
    "function_code",
    "referenced_message_id",
    "test",
    "size",
    "digest",
    "received_at",
)
"""The ``messages`` columns taken from a ``MessageRecord``, in its field order."""

SUMMARY = (
    *(messages.c[name] for name in RECORD_COLUMNS),
    messages.c.state,
    messages.c.state_at,
    messages.c.accepted_at,
    messages.c.attempts,
    messages.c.last_error_code,
)
"""What ``schema.summary_from_row`` decodes."""

TIMELINE = (
    message_states.c.state,
    message_states.c.at,
    message_states.c.error_code,
    message_states.c.detail,
    message_states.c.attempt,
)

LINK = (links.c.message_id, links.c.related_message_id, links.c.relation, links.c.at)

INBOX_ITEM = (
    inbox.c.message_id,
    inbox.c.receiver,
    messages.c.sender,
    messages.c.document_type,
    messages.c.size,
    inbox.c.stored_at,
    inbox.c.fetches,
    inbox.c.lease_until,
    inbox.c.acked_at,
    inbox.c.retransmission_of,
)
"""What ``contract.inbox_item`` decodes."""

INBOX_DOCUMENT = sa.func.coalesce(inbox.c.retransmission_of, inbox.c.message_id)
"""The message whose bytes an inbox entry hands over: the e-Form D of a re-transmitted copy
(whose entry is the request's), otherwise the entry's own."""

INBOX_JOIN = inbox.join(messages, messages.c.message_id == INBOX_DOCUMENT)

CLAIM_OUTRIGHT, CLAIM_AFTER_LEASE = grant_states()
"""Where ``gateway.core.lease.claim`` grants: at once, or once no lease holds the message."""


def by_id(table: sa.Table) -> ColumnElement[bool]:
    return table.c.message_id == param("message_id")


def transition_values(state: ColumnElement[Any]) -> dict[str, ColumnElement[Any]]:
    """The SET of a transition: the new ``state`` at ``:at``, no lease, and ``:error_code``
    when one is given (the last one kept otherwise)."""
    return {
        "state": state,
        "state_at": param("at", messages.c.state_at),
        "lease_until": sa.null(),
        "last_error_code": sa.func.coalesce(
            param("error_code", messages.c.last_error_code), messages.c.last_error_code
        ),
    }


def claim_update() -> sa.Update:
    """The conditional UPDATE that takes a claim, granting exactly where ``lease.claim`` does.

    It moves the row only from a state ``claim`` grants in, with the digest (when given) the
    one accepted; a concurrent claimer finds the row already moved.
    """
    lease_free = sa.or_(messages.c.lease_until.is_(None), messages.c.lease_until <= param("at"))
    return (
        sa.update(messages)
        .where(
            by_id(messages),
            sa.or_(
                states_in(messages.c.state, CLAIM_OUTRIGHT),
                sa.and_(states_in(messages.c.state, CLAIM_AFTER_LEASE), lease_free),
            ),
            sa.or_(
                param("digest", messages.c.digest).is_(None), messages.c.digest == param("digest")
            ),
        )
        .values(
            state=const(MessageState.DELIVERING.value),
            state_at=param("at"),
            lease_until=param("lease_until"),
            attempts=messages.c.attempts + const(1),
        )
    )


def shared_statements() -> dict[str, sa.sql.ClauseElement]:
    """The statements whose text differs between the dialects only as the compiler writes it."""
    return {
        **outcome_statements(),
        "known": sa.select(
            messages.c.message_id, messages.c.state, messages.c.accepted_at, messages.c.digest
        ).where(
            sa.or_(
                by_id(messages),
                sa.and_(
                    *(
                        messages.c[name] == param(name)
                        for name in ("sender", "document_type", "document_id", "function_code")
                    )
                ),
            )
        ),
        "summary": sa.select(*SUMMARY).where(by_id(messages)),
        "schema_version": sa.select(sa.func.max(journal_schema.c.version)),
        "set_schema_version": sa.insert(journal_schema).values(
            values_of(journal_schema, ("version", "journal_id"))
        ),
        "timeline": sa.select(*TIMELINE)
        .where(by_id(message_states))
        .order_by(message_states.c.seq),
        "links": sa.select(*LINK)
        .where(sa.or_(by_id(links), links.c.related_message_id == param("message_id")))
        .order_by(links.c.at, WriteOrder()),
        "claim_look": sa.select(messages.c.state, messages.c.digest, messages.c.lease_until).where(
            by_id(messages)
        ),
        "state_of": sa.select(messages.c.state, messages.c.attempts).where(by_id(messages)),
        "exists": sa.select(const(1)).where(by_id(messages)),
        "payload": sa.select(payloads.c.body).where(by_id(payloads)),
        "counts": sa.select(messages.c.receiver, messages.c.state, sa.func.count())
        .group_by(messages.c.receiver, messages.c.state)
        .order_by(messages.c.receiver, messages.c.state),
        "counts_live": sa.select(messages.c.receiver, messages.c.state, sa.func.count())
        .where(messages.c.test == const(False))
        .group_by(messages.c.receiver, messages.c.state)
        .order_by(messages.c.receiver, messages.c.state),
        "purge": sa.delete(messages).where(
            messages.c.message_id.in_(
                sa.select(messages.c.message_id)
                .where(messages.c.state_at < param("cutoff"))
                .limit(const(PURGE_BATCH))
                .with_for_update(skip_locked=True)
            )
        ),
        "inbox_waiting": sa.select(*INBOX_ITEM)
        .select_from(INBOX_JOIN)
        .where(
            inbox.c.receiver == param("receiver"),
            inbox.c.acked_at.is_(None),
            sa.or_(inbox.c.lease_until.is_(None), inbox.c.lease_until <= param("at")),
        )
        .order_by(inbox.c.stored_at, inbox.c.message_id)
        .limit(param("limit")),
        "audit_append": sa.insert(audit_log)
        .values(values_of(audit_log, AUDIT_COLUMNS))
        .returning(audit_log.c.seq),
        "register_history": register_history_statement(by_key=False),
        "register_record": register_history_statement(by_key=True),
        "inbox_ack_look": sa.select(inbox.c.acked_at).where(
            by_id(inbox), inbox.c.receiver == param("receiver")
        ),
    }


LIST_FILTERS = ("state", "sender", "receiver", "test", "before")


def list_statement(filters: frozenset[str]) -> sa.Select[Any]:
    """Messages newest first, with a condition for each filter named (see ``LIST_FILTERS``)."""
    conditions = [
        messages.c[name] == param(name)
        for name in ("state", "sender", "receiver", "test")
        if name in filters
    ]
    if "before" in filters:
        conditions.append(messages.c.received_at < param("before"))
    return (
        sa.select(*SUMMARY)
        .where(*conditions)
        .order_by(messages.c.received_at.desc(), messages.c.message_id.desc())
        .limit(param("limit"))
    )


@functools.cache
def list_sql(dialect: str, filters: frozenset[str]) -> Sql:
    """The listing for one combination of filters, compiled the first time it is asked for."""
    return compile_for(dialect, list_statement(filters))


AUDIT_FILTERS = ("actor", "action", "target", "before_seq")


def audit_statement(filters: frozenset[str]) -> sa.Select[Any]:
    """Audit rows newest first, with a condition for each filter named (``AUDIT_FILTERS``)."""
    conditions = [
        audit_log.c[name] == param(name)
        for name in ("actor", "action", "target")
        if name in filters
    ]
    if "before_seq" in filters:
        conditions.append(audit_log.c.seq < param("before_seq", audit_log.c.seq))
    return (
        sa.select(audit_log.c.seq, *(audit_log.c[name] for name in AUDIT_COLUMNS))
        .where(*conditions)
        .order_by(audit_log.c.seq.desc())
        .limit(param("limit"))
    )


@functools.cache
def audit_sql(dialect: str, filters: frozenset[str]) -> Sql:
    """The audit listing for one combination of filters, compiled when first asked for."""
    return compile_for(dialect, audit_statement(filters))


OUTCOME_STATES = (MessageState.DELIVERED, MessageState.RETRYING, MessageState.DEAD)
"""Timeline rows that end a delivery attempt: one success, two kinds of failure."""

OUTCOMES_JOIN = message_states.join(messages, messages.c.message_id == message_states.c.message_id)


def outcome_statements() -> dict[str, sa.sql.ClauseElement]:
    """Per receiver since ``:since``: attempts by outcome, and the newest failures."""
    return {
        "outcome_counts": sa.select(
            messages.c.receiver,
            message_states.c.state,
            sa.func.count(),
            sa.func.max(message_states.c.at),
        )
        .select_from(OUTCOMES_JOIN)
        .where(
            message_states.c.at >= param("since", message_states.c.at),
            states_in(message_states.c.state, OUTCOME_STATES),
        )
        .group_by(messages.c.receiver, message_states.c.state),
        "outcome_failures": sa.select(
            messages.c.receiver,
            message_states.c.at,
            message_states.c.error_code,
            message_states.c.detail,
        )
        .select_from(OUTCOMES_JOIN)
        .where(
            message_states.c.at >= param("since", message_states.c.at),
            states_in(message_states.c.state, (MessageState.RETRYING, MessageState.DEAD)),
        )
        .order_by(message_states.c.at.desc())
        .limit(param("limit")),
    }
