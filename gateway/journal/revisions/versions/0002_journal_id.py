"""The journal's identity: ``journal_schema.journal_id`` (schema version 2).

A random id given once, when the journal is created or migrated here, and the same for every
node that shares the journal: what a gateway can record on the broker to tell its own queues
from another journal's.

Revision ID: 0002
Revises: 0001
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column and give this journal its id."""
    op.add_column("journal_schema", sa.Column("journal_id", sa.Text()))
    op.execute(
        sa.text("UPDATE journal_schema SET journal_id = :journal_id, version = 2").bindparams(
            journal_id=uuid.uuid4().hex
        )
    )


def downgrade() -> None:
    """Back to version 1 (the id is lost)."""
    op.execute(sa.text("UPDATE journal_schema SET version = 1"))
    with op.batch_alter_table("journal_schema") as batch:
        batch.drop_column("journal_id")
