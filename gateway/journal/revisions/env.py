"""Alembic's environment for the journal: migrations run on the connection, and in the
transaction, that ``gateway.journal.migrations.migrate`` opened (after taking the journal's
schema lock), so a migration is applied whole or not at all."""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    render_as_batch=True,  # SQLite alters most columns by copying the table: batch mode does
)
with context.begin_transaction():
    context.run_migrations()
