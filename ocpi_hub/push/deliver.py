"""One delivery as calls to the eMSP's Locations Receiver (OCPI 2.2.1 §8.3, digest §5.3).

The body is read when the delivery is sent, from the stored Location as the partner's version sees it (the 2.2 view
for 2.2 partners), so that the newest state is what arrives. An EVSE or Connector the partner's version cannot show
has nothing to send and counts as delivered. A PATCH the eMSP refuses (permanently) is followed by the spec's
fallback (§1.2): GET the object from the eMSP, and PUT the full object unless the eMSP already has this version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ocpi_hub.client import OcpiClient, PartnerCallError, Routing, join_url
from ocpi_hub.db.deliveries import Due, Method
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi.common import Role, to_utc
from ocpi_hub.push.outbox import field_names, object_type

_decode = msgspec.json.Decoder().decode
Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Receiver:
    """What sending to one partner needs, read from its row once per batch."""

    locations_url: str
    token: str
    send_base64: bool
    version: str
    party: tuple[str, str] | None  # OCPI-to: the partner's first EMSP role, else its first role

    @classmethod
    def of(cls, partner: Partner) -> Receiver | None:
        """None when the partner cannot receive Locations (no endpoint, no token, no version)."""
        url = partner.endpoint("locations", "RECEIVER")
        if url is None or partner.token is None or partner.version is None:
            return None
        roles = sorted(partner.roles, key=lambda r: r.get("role") != Role.EMSP)  # stable: first EMSP, else first
        party = (roles[0]["country_code"], roles[0]["party_id"]) if roles else None
        return cls(url, partner.token, partner.send_base64, partner.version, party)


async def deliver(client: OcpiClient, receiver: Receiver, due: Due) -> None:
    """Send `due`; raises PartnerCallError when it did not arrive (for a PATCH: after the fallback too)."""
    segments = (due.country_code, due.party_id, due.location_id, due.evse_uid, due.connector_id)
    url = join_url(receiver.locations_url, *(s for s in segments if s))
    routing = None
    if receiver.party is not None:  # FROM: the Location's owner, one of our parties (digest §6.1)
        routing = Routing(due.country_code, due.party_id, *receiver.party)

    async def call(method: str, body: Any = None) -> Any:
        return await client.call(
            method, url, token=receiver.token, send_base64=receiver.send_base64, body=body, routing=routing
        )

    if due.method is Method.PUT and not due.evse_uid:
        await call("PUT", msgspec.Raw(due.body))  # the stored JSON as it is
        return
    obj = _object(_decode(due.body), due.evse_uid, due.connector_id)
    if obj is None:
        return  # not in the partner's version's view of the Location: nothing to send
    names = field_names(object_type(due.evse_uid, due.connector_id), due.fields)
    # A PATCH cannot remove a field (digest §1.2): an object that lost one is replaced.
    if due.method is Method.PUT or any(name not in obj for name in names):
        await call("PUT", obj)
        return
    try:
        await call("PATCH", {name: obj[name] for name in names} | {"last_updated": obj["last_updated"]})
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
        return  # the eMSP has this very version
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


def _object(location: dict[str, Any], evse_uid: str, connector_id: str) -> dict[str, Any] | None:
    """The Location, EVSE or Connector named by the key (ids compared case-insensitively: they are CiStrings)."""
    if not evse_uid:
        return location
    evse = _find(location.get("evses"), "uid", evse_uid)
    if evse is None or not connector_id:
        return evse
    return _find(evse.get("connectors"), "id", connector_id)


def _find(items: list[dict[str, Any]] | None, key: str, wanted: str) -> dict[str, Any] | None:
    return next((item for item in items or () if item[key].upper() == wanted.upper()), None)


def _instant(value: Any) -> datetime | None:
    try:
        return to_utc(msgspec.convert(value, datetime))
    except msgspec.ValidationError:
        return None
