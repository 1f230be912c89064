"""The deadline index (schema version 6).

``messages_type_received``: ``GET /v1/deadlines`` reads only the messages of the types that
carry OCP time limits (e-Form D, Origin Declaration, retroactive check and verification visit
requests), oldest first, with a keyset cursor; without this index it would walk every message
in ``received_at`` order. Nothing is stored for a deadline: it stays derived from the journal.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index; set version 6."""
    op.create_index("messages_type_received", "messages", ["document_type", "received_at"])
    op.execute(sa.text("UPDATE journal_schema SET version = 6"))


def downgrade() -> None:
    """Back to version 5."""
    op.drop_index("messages_type_received", table_name="messages")
    op.execute(sa.text("UPDATE journal_schema SET version = 5"))
