"""What a store returns when it writes: the objects that changed, each as the push that carries it to a partner's
Receiver interface (OCPI 2.2.1 §3: PUT a whole object, PATCH some of its fields, POST a new one, DELETE it).

A store only describes; the caller of the store queues the changes in the outbox (ocpi_hub.push.outbox) and commits
once, so that a change and its deliveries are written in one transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ocpi_hub.ocpi.versions import ModuleID


class Method(enum.StrEnum):
    PUT = "PUT"
    PATCH = "PATCH"
    POST = "POST"
    DELETE = "DELETE"


@dataclass(frozen=True)
class ObjectKey:
    """An object as a Receiver's URL names it: its owner, its id and, in Locations, the EVSE uid and Connector id
    below it ("" where a level is absent)."""

    country_code: str
    party_id: str
    id: str
    evse_uid: str = ""
    connector_id: str = ""


@dataclass(frozen=True)
class Change:
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...] = ()  # PATCH: the changed fields by name (last_updated is always sent with them)
    partner_id: int | None = None  # addressed to this partner alone; None: to every partner with the receiver


@dataclass(frozen=True)
class Written:
    """What a write changed, when it has nothing else to return."""

    changes: tuple[Change, ...]
