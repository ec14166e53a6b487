"""deliveries: the push outbox (a pending or dead delivery per partner and Location, EVSE or Connector)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("location_seq", sa.Integer(), nullable=False),
        sa.Column("evse_uid", sa.String(length=36), nullable=False),
        sa.Column("connector_id", sa.String(length=36), nullable=False),
        sa.Column("method", sa.String(length=5), nullable=False),
        sa.Column("fields", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=7), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("first_enqueued_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["location_seq"], ["locations.seq"], name=op.f("fk_deliveries_location_seq_locations")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_deliveries_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_queue", "deliveries", ["partner_id", "state", "id"], unique=False)
    op.create_index(
        "uq_deliveries_pending",
        "deliveries",
        ["partner_id", "location_seq", "evse_uid", "connector_id"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("uq_deliveries_pending", table_name="deliveries")
    op.drop_index("ix_deliveries_queue", table_name="deliveries")
    op.drop_table("deliveries")
