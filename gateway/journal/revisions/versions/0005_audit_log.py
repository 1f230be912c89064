"""The audit log and the outcome index (schema version 5).

``audit_log``: append-only, one row per operator action and per view of a stored document
(``gateway.audit``). ``message_states_at``: partner health reads the delivery outcomes of a
time window (``delivery_outcomes``) by ``message_states.at``.

The table is written out here as it was at version 5, not taken from ``tables``, so that this
revision keeps meaning the same when the tables change later.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_Stamp = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``audit_log`` and the two indexes; set version 5."""
    op.create_table(
        "audit_log",
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
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("message_states_at", "message_states", ["at"])
    op.execute(sa.text("UPDATE journal_schema SET version = 5"))


def downgrade() -> None:
    """Back to version 4 (the audit log is lost: take a backup first)."""
    op.drop_index("message_states_at", table_name="message_states")
    op.drop_index("audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.execute(sa.text("UPDATE journal_schema SET version = 4"))
