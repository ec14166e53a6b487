"""Persistence: SQLAlchemy 2 typed tables and the plain async query functions that use them.

Importing this package registers every table on `Base.metadata` (alembic compares against it).
"""

from ocpi_hub.db import (
    certificates,
    chargestations,
    commands,
    deliveries,
    health,
    leases,
    locations,
    partners,
    sessions,
    sync_sources,
    tariffs,
    tokens,
)
from ocpi_hub.db.base import Base

__all__ = [
    "Base",
    "certificates",
    "chargestations",
    "commands",
    "deliveries",
    "health",
    "leases",
    "locations",
    "partners",
    "sessions",
    "sync_sources",
    "tariffs",
    "tokens",
]
