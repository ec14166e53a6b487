"""Apply the alembic migrations shipped with the package (`migrations/`, installed as ocpi_hub.migrations)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("ocpi_hub.migrations")))
    return config


def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema (blocking; call it outside an event loop)."""
    config = alembic_config()
    config.attributes["url"] = database_url
    command.upgrade(config, "head")
