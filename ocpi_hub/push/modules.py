"""The modules the outbox carries: which objects a new partner is sent and in which order (the broadcast modules),
where a delivery's body is read when it is sent (every module), and what is recorded when a partner accepted a
POST (CDRs: the URL it answered with)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.db import commands, locations, sessions, tariffs
from ocpi_hub.ocpi.versions import ModuleID

# (session, object ids, the partner's OCPI version) → JSON bodies by upper-cased id; a missing id has no body.
Bodies = Callable[[AsyncSession, Sequence[str], str], Awaitable[dict[str, bytes]]]
# (session, object id, *, at, location_url: the Location header of the answer) after a partner accepted our POST.
Accepted = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Pushed:
    module: ModuleID
    every: Select[Any]  # (country_code, party_id, id) of every object, oldest first
    bodies: Bodies


# Pushed to every partner with the Receiver. Tariffs first: a Connector may only name a Tariff the partner already
# has (db/deliveries.py WAITS_FOR).
BROADCAST = (
    Pushed(ModuleID.TARIFFS, tariffs.EVERY, tariffs.bodies),
    Pushed(ModuleID.LOCATIONS, locations.EVERY, locations.bodies),
)

# Pushed to the one eMSP that owns each object (Change.partner_id).
ADDRESSED: dict[ModuleID, Bodies] = {
    ModuleID.SESSIONS: sessions.session_bodies,
    ModuleID.CDRS: sessions.cdr_bodies,
    ModuleID.COMMANDS: commands.results,
}

# Modules whose objects go to a URL of their own, not to the partner's module endpoint: a CommandResult goes to
# the command's response_url, called exactly as given. (session, object ids) → URLs by id.
TARGETS: dict[ModuleID, Callable[[AsyncSession, Sequence[str]], Awaitable[dict[str, str]]]] = {
    ModuleID.COMMANDS: commands.response_urls,
}

BODIES: dict[ModuleID, Bodies] = {p.module: p.bodies for p in BROADCAST} | ADDRESSED

ACCEPTED: dict[ModuleID, Accepted] = {ModuleID.CDRS: sessions.record_sent, ModuleID.COMMANDS: commands.record_sent}
