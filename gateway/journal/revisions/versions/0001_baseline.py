"""Baseline: the journal as every gateway before migrations created it (schema version 1).

A journal at version 1 already has these tables (``journal_schema``, ``messages``,
``message_states``, ``payloads``, ``links``, ``inbox``): there is nothing to do. A journal that
does not exist yet is created at the newest version by the gateway itself.

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: version 1 is where migrations begin."""


def downgrade() -> None:
    """Nothing below version 1."""
