"""sessions and cdrs: charging sessions with their meter readings, and their CDRs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("emsp_country_code", sa.String(length=2), nullable=False),
        sa.Column("emsp_party_id", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=11), nullable=False),
        sa.Column("start_request", sa.LargeBinary(), nullable=False),
        sa.Column("readings", sa.LargeBinary(), nullable=False),
        sa.Column("tariff", sa.LargeBinary(), nullable=True),
        sa.Column("time_zone", sa.String(length=255), nullable=False),
        sa.Column("cdr_location", sa.LargeBinary(), nullable=False),
        sa.Column("last_updated", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_sessions")),
        sa.UniqueConstraint("key", name=op.f("uq_sessions_key")),
    )
    op.create_index(op.f("ix_sessions_last_updated"), "sessions", ["last_updated"], unique=False)
    op.create_table(
        "cdrs",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=39), nullable=False),
        sa.Column("key", sa.String(length=39), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("emsp_country_code", sa.String(length=2), nullable=False),
        sa.Column("emsp_party_id", sa.String(length=3), nullable=False),
        sa.Column("session_key", sa.String(length=36), nullable=True),
        sa.Column("credit_of", sa.String(length=39), nullable=True),
        sa.Column("last_updated", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("sent_at", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("location_url", sa.String(length=512), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_cdrs")),
        sa.UniqueConstraint("key", name=op.f("uq_cdrs_key")),
        sa.UniqueConstraint("credit_of", name=op.f("uq_cdrs_credit_of")),
    )
    op.create_index(op.f("ix_cdrs_last_updated"), "cdrs", ["last_updated"], unique=False)
    op.create_index(op.f("ix_cdrs_session_key"), "cdrs", ["session_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cdrs_session_key"), table_name="cdrs")
    op.drop_index(op.f("ix_cdrs_last_updated"), table_name="cdrs")
    op.drop_table("cdrs")
    op.drop_index(op.f("ix_sessions_last_updated"), table_name="sessions")
    op.drop_table("sessions")
