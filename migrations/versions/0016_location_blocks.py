"""finer change counters for Locations: which Locations changed, not only that one did

Migration 0015 counts every change of a Location in one counter, `locations`, so a status change emptied every
kept Locations answer, though it changes one Location. This adds, on the same two tables:
- `locations_added`: a Location inserted or deleted (the totals of the lists, and which ids exist);
- `loc_block_0` to `loc_block_63`: a Location updated, counted in its block, ((seq - 1) / 64) % 64.
An answer that reads known Locations (a page without filters, one Location) depends on `locations_added` and on its
blocks only; the filtered lists still on `locations` (ocpi_hub/db/freshness.py, docs/ocpi.md §11). A Location's
seq never changes (it is the primary key), so an update counts in the block of its new row.

The constants are spelled out here rather than imported: a migration keeps meaning what it did.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TABLES = ("locations", "location_documents")
_BLOCK = "'loc_block_' || ((NEW.seq - 1) / 64 % 64)"
# SQLite: (trigger suffix, event, the counter it bumps)
_SQLITE_TRIGGERS = (
    ("added_insert", "INSERT", "'locations_added'"),
    ("added_delete", "DELETE", "'locations_added'"),
    ("block", "UPDATE", _BLOCK),
)

# PostgreSQL: deferred to the commit and once per transaction and counter, as in 0015, but on one row per counter
# (shard 0): a block is written by few concurrent writers, and its sum stays one row to read.
_POSTGRES_FUNCTION = f"""
CREATE FUNCTION change_counters_bump_location() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counter text := CASE WHEN TG_OP = 'UPDATE' THEN {_BLOCK} ELSE 'locations_added' END;
BEGIN
    IF current_setting('ocpi_hub.changed_' || counter, true) IS DISTINCT FROM 'y' THEN
        PERFORM set_config('ocpi_hub.changed_' || counter, 'y', true);
        INSERT INTO change_counters (kind, shard, version) VALUES (counter, 0, 1)
        ON CONFLICT (kind, shard) DO UPDATE SET version = change_counters.version + 1;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(_POSTGRES_FUNCTION)
    for table in _TABLES:
        if postgres:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER change_{table}_rows AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_counters_bump_location()"
            )
            continue
        for suffix, event, counter in _SQLITE_TRIGGERS:
            op.execute(
                f"CREATE TRIGGER change_{table}_{suffix} AFTER {event} ON {table} BEGIN "
                f"INSERT INTO change_counters (kind, shard, version) VALUES ({counter}, 0, 1) "
                "ON CONFLICT (kind, shard) DO UPDATE SET version = version + 1; END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER change_{table}_rows ON {table}")
        else:
            for suffix, _, _ in _SQLITE_TRIGGERS:
                op.execute(f"DROP TRIGGER change_{table}_{suffix}")
    if postgres:
        op.execute("DROP FUNCTION change_counters_bump_location()")
    op.execute("DELETE FROM change_counters WHERE kind = 'locations_added' OR kind LIKE 'loc_block_%'")
