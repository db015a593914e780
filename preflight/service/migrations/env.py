"""Alembic's environment: the service hands it an open connection (see preflight.service.schema)."""

from __future__ import annotations

from alembic import context

from preflight.service.store import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
