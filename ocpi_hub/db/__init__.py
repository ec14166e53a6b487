"""Persistence: SQLAlchemy 2 typed tables and the plain async query functions that use them.

Importing this package registers every table on `Base.metadata` (alembic compares against it).
"""

from ocpi_hub.db import (
    certificates,
    chargestations,
    commands,
    deliveries,
    freshness,
    health,
    leases,
    locations,
    partners,
    sessions,
    sync_runs,
    sync_sources,
    tariffs,
    tokens,
    traffic,
)
from ocpi_hub.db.base import Base

__all__ = [
    "Base",
    "certificates",
    "chargestations",
    "commands",
    "deliveries",
    "freshness",
    "health",
    "leases",
    "locations",
    "partners",
    "sessions",
    "sync_runs",
    "sync_sources",
    "tariffs",
    "tokens",
    "traffic",
]
