"""Brings a database to the newest schema with Alembic when the service (or an account command) starts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks; a no-op on a current database."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
