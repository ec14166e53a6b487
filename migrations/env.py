"""Alembic environment: runs on a connection handed in by ocpi_hub.db.migrate, or on `sqlalchemy.url`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from ocpi_hub.db import Base
from ocpi_hub.db.engine import create_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # batch mode: SQLite can only ALTER tables by copying them.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: run `ocpi-hub migrate`, or give sqlalchemy.url")
    asyncio.run(_run_on_url(url))
