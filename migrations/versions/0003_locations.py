"""locations: the narrow crawl table (dense creation order, owner, last_updated) and the rendered OCPI documents

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "locations",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("party_seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("last_updated", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_locations")),
        sa.UniqueConstraint("country_code", "party_id", "party_seq", name=op.f("uq_locations_country_code")),
        sa.UniqueConstraint("key", name=op.f("uq_locations_key")),
    )
    op.create_index(op.f("ix_locations_last_updated"), "locations", ["last_updated"], unique=False)
    op.create_table(
        "location_documents",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body_221", sa.LargeBinary(), nullable=False),
        sa.Column("body_22", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["locations.seq"], name=op.f("fk_location_documents_seq_locations")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_location_documents")),
    )


def downgrade() -> None:
    op.drop_table("location_documents")
    op.drop_index(op.f("ix_locations_last_updated"), table_name="locations")
    op.drop_table("locations")
