"""internal API of the seed: tokens (shared with the OCPI Tokens Receiver), charge stations with the settings,
certificates and triggers asked of them, and uploaded client certificates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("visual_number", sa.String(length=64), nullable=True),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("whitelist", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("default_profile_type", sa.String(length=16), nullable=True),
        sa.Column("energy_contract", sa.JSON(), nullable=True),
        sa.Column("last_updated", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("country_code", "party_id", "uid", "type", name=op.f("uq_tokens_country_code")),
    )
    op.create_index(op.f("ix_tokens_uid"), "tokens", ["uid"], unique=False)
    op.create_table(
        "charge_stations",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("security_profile", sa.Integer(), nullable=False),
        sa.Column("base64_sha256_password", sa.String(length=44), nullable=True),
        sa.Column("invalid_username_allowed", sa.Boolean(), nullable=True),
        sa.Column("registration_status", sa.String(length=16), nullable=False),
        sa.Column("registered_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("updated_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_stations")),
    )
    op.create_table(
        "charge_station_settings",
        sa.Column("cs_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("value", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cs_id"], ["charge_stations.id"], name=op.f("fk_charge_station_settings_cs_id_charge_stations")
        ),
        sa.PrimaryKeyConstraint("cs_id", "name", name=op.f("pk_charge_station_settings")),
    )
    op.create_table(
        "charge_station_certificates",
        sa.Column("cs_id", sa.String(length=48), nullable=False),
        sa.Column("certificate_hash", sa.String(length=44), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cs_id"], ["charge_stations.id"], name=op.f("fk_charge_station_certificates_cs_id_charge_stations")
        ),
        sa.PrimaryKeyConstraint("cs_id", "certificate_hash", name=op.f("pk_charge_station_certificates")),
    )
    op.create_table(
        "charge_station_triggers",
        sa.Column("cs_id", sa.String(length=48), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cs_id"], ["charge_stations.id"], name=op.f("fk_charge_station_triggers_cs_id_charge_stations")
        ),
        sa.PrimaryKeyConstraint("cs_id", "trigger", name=op.f("pk_charge_station_triggers")),
    )
    op.create_table(
        "certificates",
        sa.Column("certificate_hash", sa.String(length=44), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("uploaded_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("certificate_hash", name=op.f("pk_certificates")),
    )


def downgrade() -> None:
    op.drop_table("certificates")
    op.drop_table("charge_station_triggers")
    op.drop_table("charge_station_certificates")
    op.drop_table("charge_station_settings")
    op.drop_table("charge_stations")
    op.drop_index(op.f("ix_tokens_uid"), table_name="tokens")
    op.drop_table("tokens")
