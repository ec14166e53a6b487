"""The alembic migrations and the table definitions must not drift apart, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from ocpi_hub.db import Base
from ocpi_hub.db.migrate import alembic_config


async def test_migrated_schema_matches_the_tables(engine: AsyncEngine) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


def test_pending_location_deliveries_keep_their_meaning_across_0006(tmp_path: Path) -> None:
    """0004 kept a PATCH's fields as bits of the struct's field order; 0006 turns them into names through the order
    of that time, so a struct reordered later cannot change what a waiting PATCH sends."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "0005")
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute(
            "INSERT INTO partners (id, state, initiator, send_base64, roles, endpoints, created_at, updated_at) "
            "VALUES (1, 'registered', 'hub', 1, '[]', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        db.execute(
            "INSERT INTO locations (seq, party_seq, id, key, country_code, party_id, last_updated, revision) "
            "VALUES (1, 1, 'Loc1', 'LOC1', 'NL', 'OHB', '2026-01-01 00:00:00', 1)"
        )
        status, name_and_city = 1 << 2, (1 << 5) | (1 << 7)  # EVSE.status; Location.name and Location.city
        for row_id, evse_uid, method, fields in [(7, "E1", "PATCH", status), (8, "", "PATCH", name_and_city)]:
            db.execute(
                "INSERT INTO deliveries (id, partner_id, location_seq, evse_uid, connector_id, method, fields, state, "
                "attempts, next_attempt_at, first_enqueued_at, revision) VALUES "
                f"({row_id}, 1, 1, '{evse_uid}', '', '{method}', {fields}, 'pending', 2, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00', 3)"
            )
    command.upgrade(config, "head")
    with sqlite3.connect(tmp_path / "old.db") as db:
        rows = db.execute(
            "SELECT id, module, country_code, party_id, object_id, evse_uid, method, fields, attempts, revision "
            "FROM deliveries ORDER BY id"
        ).fetchall()
    assert rows == [
        (7, "locations", "NL", "OHB", "Loc1", "E1", "PATCH", ",status,", 2, 3),
        (8, "locations", "NL", "OHB", "Loc1", "", "PATCH", ",city,name,", 2, 3),
    ]
