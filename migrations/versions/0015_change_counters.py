"""what changed, per kind of data, for exact read caches

One counter per kind of data an OCPI answer is read from, bumped by triggers on that kind's tables in the very
transaction that changes them, so that every writer (a request, the push worker, `ocpi-hub sync`, another hub on
the same database) is covered without code on its write path (ocpi_hub/db/freshness.py, docs/ocpi.md §11).
Tables no cached answer reads (deliveries, partner_health, leases, traffic, ...) have no trigger: their writes
leave the caches alone.

The kinds and their tables are spelled out here rather than imported: a migration keeps meaning what it did.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# kind -> the tables its answers read
_TABLES = {
    "locations": ("locations", "location_documents"),
    "tariffs": ("tariffs",),
    "sessions": ("sessions",),
    "cdrs": ("cdrs",),
    "partners": ("partners",),  # the callers (token, state) and their roles, which shape every answer
}
_EVENTS = ("insert", "update", "delete")

# PostgreSQL: deferred to the commit, so that a counter row stays locked from the commit's start to its end only
# (a statement-time trigger would hold it for the rest of the transaction, making every writer of a kind wait for
# the slowest), and once per transaction and kind (a transaction-local flag), however many rows change. Each kind
# counts on 8 rows (shards), a transaction bumping the one its id picks, and a kind's number is their sum: every
# commit still adds one, and concurrent writers mostly lock different rows (one row per kind capped concurrent
# writers of a kind at about 600 commits/s on the 2-core machine of bench/README.md, against 1,400 without it).
_SHARDS = 8
_POSTGRES_FUNCTION = f"""
CREATE FUNCTION change_counters_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ocpi_hub.changed_' || TG_ARGV[0], true) IS DISTINCT FROM 'y' THEN
        PERFORM set_config('ocpi_hub.changed_' || TG_ARGV[0], 'y', true);
        INSERT INTO change_counters (kind, shard, version)
        VALUES (TG_ARGV[0], (txid_current() % {_SHARDS})::integer, 1)
        ON CONFLICT (kind, shard) DO UPDATE SET version = change_counters.version + 1;
    END IF;
    RETURN NULL;
END
$$
"""


def _trigger_name(table: str, event: str = "") -> str:
    return f"change_{table}_{event}" if event else f"change_{table}"


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "shard", name=op.f("pk_change_counters")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(_POSTGRES_FUNCTION)
    for kind, tables in _TABLES.items():
        for table in tables:
            if postgres:
                op.execute(
                    f"CREATE CONSTRAINT TRIGGER {_trigger_name(table)} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_counters_bump('{kind}')"
                )
                continue
            # SQLite: row triggers only, one per event; one writer at a time, so no lock to keep short.
            for event in _EVENTS:
                op.execute(
                    f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event.upper()} ON {table} BEGIN "
                    f"INSERT INTO change_counters (kind, shard, version) VALUES ('{kind}', 0, 1) "
                    "ON CONFLICT (kind, shard) DO UPDATE SET version = version + 1; END"
                )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for tables in _TABLES.values():
        for table in tables:
            if postgres:
                op.execute(f"DROP TRIGGER {_trigger_name(table)} ON {table}")
            else:
                for event in _EVENTS:
                    op.execute(f"DROP TRIGGER {_trigger_name(table, event)}")
    if postgres:
        op.execute("DROP FUNCTION change_counters_bump()")
    op.drop_table("change_counters")
