"""tariffs, and connector_tariffs: which Connectors name which Tariff

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("last_updated", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("origin", sa.String(length=4), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("key", name=op.f("uq_tariffs_key")),
    )
    op.create_index(op.f("ix_tariffs_last_updated"), "tariffs", ["last_updated"], unique=False)
    uses = op.create_table(
        "connector_tariffs",
        sa.Column("location_seq", sa.Integer(), nullable=False),
        sa.Column("evse_uid", sa.String(length=36), nullable=False),
        sa.Column("connector_id", sa.String(length=36), nullable=False),
        sa.Column("tariff_key", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_seq"], ["locations.seq"], name=op.f("fk_connector_tariffs_location_seq_locations")
        ),
        sa.PrimaryKeyConstraint(
            "location_seq", "evse_uid", "connector_id", "tariff_key", name=op.f("pk_connector_tariffs")
        ),
    )
    op.create_index(op.f("ix_connector_tariffs_tariff_key"), "connector_tariffs", ["tariff_key"], unique=False)
    # Locations stored before this revision may already name tariff ids: record them, so that such a Tariff, once
    # put, cannot be deleted while a Connector names it.
    rows = []
    for seq, body in op.get_bind().execute(sa.text("SELECT seq, body_221 FROM location_documents")):
        location = json.loads(body)
        rows += [
            {"location_seq": seq, "evse_uid": evse["uid"], "connector_id": connector["id"], "tariff_key": tariff}
            for evse in location.get("evses") or ()
            for connector in evse["connectors"]
            for tariff in {t.upper() for t in connector.get("tariff_ids") or ()}
        ]
    if rows:
        op.bulk_insert(uses, rows)


def downgrade() -> None:
    op.drop_index(op.f("ix_connector_tariffs_tariff_key"), table_name="connector_tariffs")
    op.drop_table("connector_tariffs")
    op.drop_index(op.f("ix_tariffs_last_updated"), table_name="tariffs")
    op.drop_table("tariffs")
