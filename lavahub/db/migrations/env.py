"""Alembic's entry point, for `lavahub.db.upgrade` only: it hands over a connection inside a
transaction it commits itself. Migrations are written as explicit operations (no model import);
tests/unit/test_db.py checks that they match the row classes."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
