"""secrets at rest: room for a sealed partner token and a keyed token hash (docs/operations.md §9)

The values are not converted here: that needs the secret key, which migrations never see. `ocpi-hub
rotate-secret-key` seals and re-hashes what is stored; rows written before keep working as they are.

On PostgreSQL the columns are widened (a catalog change, no rewrite). SQLite never enforces a VARCHAR's length, and
changing the declared one would copy the table, whose DROP cascades to every table referring to partners: there
nothing changes (ocpi_hub/db/partners.py declares the same).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_WIDENED = {"token": 255, "token_hash": 96}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for column, length in _WIDENED.items():
        op.alter_column("partners", column, type_=sa.String(length=length), existing_type=sa.String(length=64))


def downgrade() -> None:
    # Only a database without sealed tokens or keyed hashes fits back (they are longer than 64 characters).
    if op.get_bind().dialect.name == "sqlite":
        return
    for column, length in _WIDENED.items():
        op.alter_column("partners", column, type_=sa.String(length=64), existing_type=sa.String(length=length))
