"""The journal's SQL, described once: what the compiled statements and the DDL look like."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from gateway.journal import postgres, tables
from gateway.journal import sqlite as sqlite_journal

JOURNAL = Path(tables.__file__).parent
COMPILED = {
    "sqlite": dict(sqlite_journal._SQL),
    "postgresql": {
        **postgres._SQL,
        **{f"transition {s.value}": sql for s, sql in postgres._TRANSITIONS.items() if sql},
    },
}


def test_no_sql_is_put_together_from_strings() -> None:
    """No journal module silences the SQL-from-strings warning (S608) any more."""
    for module in JOURNAL.glob("*.py"):
        assert "S608" not in module.read_text(encoding="utf-8"), module.name


@pytest.mark.parametrize("dialect", sorted(COMPILED))
def test_compiled_statements_are_complete(dialect: str) -> None:
    """Every compiled statement is finished SQL: no marker left for a later compile step."""
    for name, sql in COMPILED[dialect].items():
        assert "POSTCOMPILE" not in sql.text, name
        assert "__[" not in sql.text, name


@pytest.mark.parametrize("dialect", sorted(COMPILED))
def test_parameter_style_matches_the_driver(dialect: str) -> None:
    """SQLite statements take :name parameters, PostgreSQL ones %(name)s, each needed one."""
    marker = r":(\w+)" if dialect == "sqlite" else r"%\((\w+)\)s"
    for name, sql in COMPILED[dialect].items():
        written = set(re.findall(marker, sql.text))
        assert written == set(sql.needed) | set(sql.constants), name


def test_parameters_are_checked() -> None:
    """A statement refuses a call that leaves out or adds a parameter."""
    summary = sqlite_journal._SQL["summary"]
    assert summary.params(message_id="m-1") == {"message_id": "m-1"}
    with pytest.raises(TypeError, match="message_id"):
        summary.params()
    with pytest.raises(TypeError, match="sender"):
        summary.params(message_id="m-1", sender="SG")


def test_claim_statement_grants_where_the_rule_does() -> None:
    """The claim UPDATE names the rule's outright states, and DELIVERING only with a lease test."""
    for sql in (sqlite_journal._SQL["claim"], postgres._SQL["claim"]):
        assert "state IN ('ACCEPTED', 'QUEUED', 'RETRYING')" in sql.text
        assert re.search(r"state IN \('DELIVERING'\) AND \(messages\.lease_until IS NULL", sql.text)


def test_links_write_order_per_dialect(tmp_path: Path) -> None:
    """links.seq exists in PostgreSQL only; SQLite's DDL leaves it out and orders by row id."""
    sqlite_ddl = " ".join(tables.ddl("sqlite"))
    postgres_ddl = " ".join(tables.ddl("postgresql"))
    links_sqlite = re.search(r"CREATE TABLE IF NOT EXISTS links \((.*?)\n\)", sqlite_ddl, re.S)
    links_pg = re.search(r"CREATE TABLE IF NOT EXISTS links \((.*?)\n\)", postgres_ddl, re.S)
    assert links_sqlite is not None
    assert links_pg is not None
    assert "seq" not in links_sqlite.group(1)
    assert "seq BIGINT GENERATED ALWAYS AS IDENTITY" in links_pg.group(1)
    assert "links.rowid" in sqlite_journal._SQL["links"].text
    assert "links.seq" in postgres._SQL["links"].text
    db = sqlite3.connect(tmp_path / "ddl.db")
    for statement in tables.ddl("sqlite"):  # the SQLite DDL really runs, twice (idempotent)
        db.execute(statement)
        db.execute(statement)
    db.close()
