"""Re-transmitted copies in the pull inbox (schema version 7, issue 18 §1).

``inbox.retransmission_of``: set on the inbox entry of an e-Form D sent again on request (OCP
Rule 29(3)). The entry's ``message_id`` is then the request's (the journal row the hand-over
delivers), and ``retransmission_of`` names the e-Form D whose bytes, sender and type the
receiver fetches. Nullable: every earlier entry is an ordinary one.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column; set version 7."""
    op.add_column("inbox", sa.Column("retransmission_of", sa.Text, nullable=True))
    op.execute(sa.text("UPDATE journal_schema SET version = 7"))


def downgrade() -> None:
    """Back to version 6 (re-transmitted copies waiting in an inbox become ordinary entries of
    the request: acknowledge them first)."""
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("retransmission_of")
    op.execute(sa.text("UPDATE journal_schema SET version = 6"))
