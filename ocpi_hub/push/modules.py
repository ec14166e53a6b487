"""The modules whose objects are pushed to every partner with their Receiver endpoint: which objects a new partner
is sent, in which order, and where a delivery's body is read when it is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.db import locations, tariffs
from ocpi_hub.ocpi.versions import ModuleID

# (session, object ids, the partner's OCPI version) → JSON bodies by upper-cased id; a missing id has no body.
Bodies = Callable[[AsyncSession, Sequence[str], str], Awaitable[dict[str, bytes]]]


@dataclass(frozen=True)
class Pushed:
    module: ModuleID
    every: Select[Any]  # (country_code, party_id, id) of every object, oldest first
    bodies: Bodies


# Tariffs first: a Connector may only name a Tariff the partner already has (db/deliveries.py WAITS_FOR).
BROADCAST = (
    Pushed(ModuleID.TARIFFS, tariffs.EVERY, tariffs.bodies),
    Pushed(ModuleID.LOCATIONS, locations.EVERY, locations.bodies),
)

BODIES: dict[ModuleID, Bodies] = {p.module: p.bodies for p in BROADCAST}
