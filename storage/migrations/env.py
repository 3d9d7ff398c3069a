"""Alembic's entry point, run by storage/migrate.py on the connection it hands in
(inside its transaction, under its lock)."""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
context.run_migrations()
