"""commands: the commands eMSPs sent, until their CommandResult reached them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ocpi_hub.db.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=18), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_url", sa.String(length=255), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("evse_uid", sa.String(length=36), nullable=True),
        sa.Column("connector_id", sa.String(length=36), nullable=True),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("reservation_id", sa.String(length=36), nullable=True),
        sa.Column("charger_reservation_id", sa.Integer(), nullable=True),
        sa.Column("expiry_date", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("token", sa.LargeBinary(), nullable=True),
        sa.Column("authorization_reference", sa.String(length=36), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("result", sa.String(length=20), nullable=True),
        sa.Column("message", sa.String(length=512), nullable=True),
        sa.Column("received_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("expires_at", ocpi_hub.db.base.UtcDateTime(), nullable=False),
        sa.Column("answered_at", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.Column("result_sent_at", ocpi_hub.db.base.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_commands_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    op.create_index("ix_commands_open", "commands", ["state", "expires_at"], unique=False)
    open_ = sa.text("state = 'open'")
    op.create_index(
        "uq_commands_open",
        "commands",
        ["partner_id", "fingerprint"],
        unique=True,
        sqlite_where=open_,
        postgresql_where=open_,
    )


def downgrade() -> None:
    op.drop_index("uq_commands_open", table_name="commands")
    op.drop_index("ix_commands_open", table_name="commands")
    op.drop_table("commands")
