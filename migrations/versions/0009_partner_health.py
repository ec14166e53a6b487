"""partner_health: how each partner's pushes are going, per module

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_health",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("module", sa.String(length=16), nullable=False),
        sa.Column("failing_since", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("last_success_at", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("last_error_at", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_ocpi_status", sa.Integer(), nullable=True),
        sa.Column("last_ocpi_message", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_health_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("partner_id", "module", name=op.f("pk_partner_health")),
    )


def downgrade() -> None:
    op.drop_table("partner_health")
