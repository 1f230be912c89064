"""Refusals journalled, and search by document number (schema version 4, issue 16).

Adds the ``refusals`` table (one row per refused submission, state REJECTED or DUPLICATE, with
its indexes by time, sender, code and claimed message id) and the index
``messages_document_id``. Both are created from their descriptions in
``gateway.journal.tables``, so a migrated journal and a new one are the same.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from gateway.journal import tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _document_id_index() -> sa.Index:
    return next(i for i in tables.messages.indexes if i.name == "messages_document_id")


def upgrade() -> None:
    """Create the table and the index (if a gateway of this version made them already: kept)."""
    bind = op.get_bind()
    tables.refusals.create(bind, checkfirst=True)
    _document_id_index().create(bind, checkfirst=True)
    op.execute(sa.text("UPDATE journal_schema SET version = 4"))


def downgrade() -> None:
    """Back to version 3 (the refusals are lost)."""
    bind = op.get_bind()
    _document_id_index().drop(bind, checkfirst=True)
    tables.refusals.drop(bind, checkfirst=True)
    op.execute(sa.text("UPDATE journal_schema SET version = 3"))
