"""The registers the gateway keeps (issue 18): ``register_entries`` (schema version 3).

One row per register update and record: the certified-exporter register (``register`` =
``certified-exporter``) and the AEO registers (``aeo``), per issuing country; see
``gateway/journal/tables.py``. A new, empty table: nothing to convert.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Create the table and its index, and move the journal to version 3."""
    op.create_table(
        "register_entries",
        sa.Column("register", sa.Text(), primary_key=True),
        sa.Column("country", sa.Text(), primary_key=True),
        sa.Column("entry_id", sa.Text(), primary_key=True),
        sa.Column("record_key", sa.Text(), primary_key=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("effective_date", sa.Text(), nullable=False),
        sa.Column(
            "message_id",
            sa.Text(),
            sa.ForeignKey("messages.message_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("recorded_at", _STAMP, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "register_entries_record",
        "register_entries",
        ["register", "country", "record_key"],
        if_not_exists=True,
    )
    op.execute(sa.text("UPDATE journal_schema SET version = 3"))


def downgrade() -> None:
    """Back to version 2 (the registers are lost)."""
    op.drop_index("register_entries_record", table_name="register_entries")
    op.drop_table("register_entries")
    op.execute(sa.text("UPDATE journal_schema SET version = 2"))
