"""deliveries for every module: keyed by module and OCPI object key; a PATCH's fields by name

The rows of 0004 name a Location by its seq and a PATCH's fields as bit positions of the struct fields of the
object's class. Both are rewritten here: the Location's owner and id from the locations table, and the bits as
names, through the field order those classes had when 0004 was written (frozen below: a class changed later must
not change what a stored row means).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")

# The struct field order of ocpi_hub.ocpi.locations when 0004's bitmasks were written.
_LOCATION = [
    "country_code",
    "party_id",
    "id",
    "publish",
    "publish_allowed_to",
    "name",
    "address",
    "city",
    "postal_code",
    "state",
    "country",
    "coordinates",
    "related_locations",
    "parking_type",
    "evses",
    "directions",
    "operator",
    "suboperator",
    "owner",
    "facilities",
    "time_zone",
    "opening_times",
    "charging_when_closed",
    "images",
    "energy_mix",
    "last_updated",
]
_EVSE = [
    "uid",
    "evse_id",
    "status",
    "status_schedule",
    "capabilities",
    "connectors",
    "floor_level",
    "coordinates",
    "physical_reference",
    "directions",
    "parking_restrictions",
    "images",
    "last_updated",
]
_CONNECTOR = [
    "id",
    "standard",
    "format",
    "power_type",
    "max_voltage",
    "max_amperage",
    "max_electric_power",
    "tariff_ids",
    "terms_and_conditions",
    "last_updated",
]


def _names(mask: int, evse_uid: str, connector_id: str) -> str:
    order = _CONNECTOR if connector_id else _EVSE if evse_uid else _LOCATION
    names = sorted(name for i, name in enumerate(order) if mask >> i & 1)
    return "," + ",".join(names) + "," if names else ""


def upgrade() -> None:
    connection = op.get_bind()
    old = connection.execute(
        sa.text(
            "SELECT d.id, d.partner_id, l.country_code, l.party_id, l.id AS object_id, d.evse_uid, d.connector_id, "
            "d.method, d.fields, d.state, d.attempts, d.next_attempt_at, d.first_enqueued_at, d.last_error, "
            "d.revision FROM deliveries d JOIN locations l ON l.seq = d.location_seq ORDER BY d.id"
        )
    ).all()
    op.drop_index("uq_deliveries_pending", table_name="deliveries")
    op.drop_index("ix_deliveries_queue", table_name="deliveries")
    op.drop_table("deliveries")
    table = op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("module", sa.String(length=16), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("object_id", sa.String(length=36), nullable=False),
        sa.Column("evse_uid", sa.String(length=36), nullable=False),
        sa.Column("connector_id", sa.String(length=36), nullable=False),
        sa.Column("method", sa.String(length=6), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=7), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("first_enqueued_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_deliveries_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_queue", "deliveries", ["partner_id", "state", "id"], unique=False)
    op.create_index(
        "uq_deliveries_pending",
        "deliveries",
        ["partner_id", "module", "country_code", "party_id", "object_id", "evse_uid", "connector_id"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    rows = [
        row._asdict()
        | {
            "module": "locations",
            "fields": _names(row.fields, row.evse_uid, row.connector_id) if row.method == "PATCH" else "",
        }
        for row in old
    ]
    if rows:
        # Raw values read back as they were stored (naive UTC on SQLite): bind them the same way.
        plain = sa.table(table.name, *(sa.column(c.name) for c in table.columns))
        op.bulk_insert(plain, rows)
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('deliveries', 'id'), (SELECT max(id) FROM deliveries))")
            )


def downgrade() -> None:
    raise NotImplementedError("0006 keeps no location seq to go back to; restore a backup instead")
