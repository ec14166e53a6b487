"""One delivery as calls to a partner's Receiver interface (OCPI 2.2.1 §3.1 push model; Locations §8.3, Tariffs
§11.3).

The body is read when the delivery is sent, from the store as the partner's version sees it (the 2.2 view for 2.2
partners), so that the newest state is what arrives. An object the store no longer has, or that the partner's
version cannot show, has nothing to send and counts as delivered. A DELETE the partner answers with 404 arrived:
the object is gone there. A PATCH the partner refuses (permanently) is followed by the spec's fallback
(docs/ocpi.md §1.2): GET the object from the partner, and PUT the full object unless it already has this version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ocpi_hub.changes import Method
from ocpi_hub.client import OcpiClient, PartnerCallError, Routing, join_url
from ocpi_hub.db.deliveries import Due
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi import locations
from ocpi_hub.ocpi.common import Role, to_utc
from ocpi_hub.ocpi.versions import InterfaceRole, ModuleID

_decode = msgspec.json.Decoder().decode
_MODULES = frozenset(ModuleID)
Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Receiver:
    """What sending to one partner needs, read from its row once per batch."""

    endpoints: dict[ModuleID, str]  # the partner's RECEIVER endpoint of each module we push
    token: str
    send_base64: bool
    version: str
    party: tuple[str, str] | None  # OCPI-to: the partner's first EMSP role, else its first role

    @classmethod
    def of(cls, partner: Partner) -> Receiver | None:
        """None when the partner cannot receive anything (no receiver endpoint, no token, no version)."""
        endpoints = {
            ModuleID(e.identifier): e.url
            for e in partner.endpoints
            if e.role == InterfaceRole.RECEIVER and e.identifier in _MODULES
        }
        if not endpoints or partner.token is None or partner.version is None:
            return None
        roles = sorted(partner.roles, key=lambda r: r.role != Role.EMSP)  # stable: first EMSP, else first
        party = (roles[0].country_code, roles[0].party_id) if roles else None
        return cls(endpoints, partner.token, partner.send_base64, partner.version, party)


async def deliver(client: OcpiClient, receiver: Receiver, due: Due, body: bytes | None) -> None:
    """Send `due` with the stored JSON of its object (`body`, None when the store has none); raises
    PartnerCallError when it did not arrive (for a PATCH: after the fallback too)."""
    endpoint = receiver.endpoints.get(due.module)
    if endpoint is None:
        raise PartnerCallError(f"the partner no longer has a {due.module} RECEIVER endpoint", transient=False)
    key = due.key
    segments = (key.country_code, key.party_id, key.id, key.evse_uid, key.connector_id)
    url = endpoint if due.method is Method.POST else join_url(endpoint, *(s for s in segments if s))
    # FROM: the object's owner, one of our parties (docs/ocpi.md §6.1).
    routing = None if receiver.party is None else Routing(key.country_code, key.party_id, *receiver.party)

    async def call(method: str, content: Any = None) -> Any:
        return await client.call(
            method, url, token=receiver.token, send_base64=receiver.send_base64, body=content, routing=routing
        )

    if due.method is Method.DELETE:
        try:
            await call("DELETE")
        except PartnerCallError as exc:
            if exc.http_status != 404:
                raise
        return
    if body is None:
        return  # gone from the store, or not in the partner's version's view: nothing to send
    if due.method in (Method.PUT, Method.POST) and not key.evse_uid:
        await call(due.method, msgspec.Raw(body))  # the stored JSON as it is
        return
    obj = locations.child(_decode(body), key.evse_uid, key.connector_id)
    if obj is None:
        return
    # A PATCH cannot remove a field (docs/ocpi.md §1.2): an object that lost one is replaced.
    if due.method is Method.PUT or any(name not in obj for name in due.fields):
        await call("PUT", obj)
        return
    try:
        await call("PATCH", {name: obj[name] for name in due.fields} | {"last_updated": obj["last_updated"]})
    except PartnerCallError as refused:
        if refused.transient:
            raise
        await _get_then_put(call, obj, refused)


async def _get_then_put(call: Call, obj: dict[str, Any], refused: PartnerCallError) -> None:
    try:
        theirs = await call("GET")
    except PartnerCallError as exc:
        if exc.transient:
            raise
        theirs = None  # they do not have it (404, 2003) or cannot show it: PUT it
    if isinstance(theirs, dict) and _instant(theirs.get("last_updated")) == _instant(obj["last_updated"]):
        return  # the partner has this very version
    try:
        await call("PUT", obj)
    except PartnerCallError as exc:
        raise PartnerCallError(
            f"{refused}; then {exc}",
            transient=exc.transient,
            status_code=exc.status_code,
            http_status=exc.http_status,
            retry_after=exc.retry_after,
        ) from None


def _instant(value: Any) -> datetime | None:
    try:
        return to_utc(msgspec.convert(value, datetime))
    except msgspec.ValidationError:
        return None
