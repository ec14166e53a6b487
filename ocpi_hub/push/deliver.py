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
from ocpi_hub.client import Answered, OcpiClient, PartnerCallError, Routing, join_url
from ocpi_hub.db import partners
from ocpi_hub.db.deliveries import Due
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi import locations
from ocpi_hub.ocpi.common import Role, to_utc
from ocpi_hub.ocpi.versions import InterfaceRole, ModuleID
from ocpi_hub.secret_key import Keyring

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
    def of(cls, partner: Partner, keyring: Keyring) -> Receiver | None:
        """None when we cannot call the partner (no token, no version). A partner without any RECEIVER endpoint
        still receives what goes to URLs of its own (a CommandResult to its response_url)."""
        endpoints = {
            ModuleID(e.identifier): e.url
            for e in partner.endpoints
            if e.role == InterfaceRole.RECEIVER and e.identifier in _MODULES
        }
        token = partners.outbound_token(partner, keyring)  # docs/operations.md §9
        if token is None or partner.version is None:
            return None
        roles = sorted(partner.roles, key=lambda r: r.role != Role.EMSP)  # stable: first EMSP, else first
        party = (roles[0].country_code, roles[0].party_id) if roles else None
        return cls(endpoints, token, partner.send_base64, partner.version, party)


async def deliver(
    client: OcpiClient, receiver: Receiver, due: Due, body: bytes | None, target: str | None = None
) -> str | None:
    """Send `due` with the stored JSON of its object (`body`, None when the store has none), to the partner's
    module endpoint or to the object's own `target` URL (a command's response_url, called as given); raises
    PartnerCallError when it did not arrive (for a PATCH: after the fallback too). Returns, for a POST, the
    Location header the partner answered with (CDRs: where it keeps the CDR)."""
    endpoint = target or receiver.endpoints.get(due.module)
    if endpoint is None:
        raise PartnerCallError(f"the partner no longer has a {due.module} RECEIVER endpoint", transient=False)
    key = due.key
    segments = (key.country_code, key.party_id, key.id, key.evse_uid, key.connector_id)
    url = endpoint if due.method is Method.POST else join_url(endpoint, *(s for s in segments if s))
    # FROM: the object's owner, one of our parties (docs/ocpi.md §6.1).
    routing = None if receiver.party is None else Routing(key.country_code, key.party_id, *receiver.party)

    async def send(method: str, content: Any = None) -> Answered:
        return await client.request(
            method, url, token=receiver.token, send_base64=receiver.send_base64, body=content, routing=routing
        )

    async def call(method: str, content: Any = None) -> Any:
        return (await send(method, content)).data

    if due.method is Method.DELETE:
        try:
            await call("DELETE")
        except PartnerCallError as exc:
            if exc.http_status != 404:
                raise
        return None
    if body is None:
        return None  # gone from the store, or not in the partner's version's view: nothing to send
    if due.method is Method.POST:
        return await _post(send, body)
    if due.method is Method.PUT and not key.evse_uid:
        await call("PUT", msgspec.Raw(body))  # the stored JSON as it is
        return None
    obj = locations.child(_decode(body), key.evse_uid, key.connector_id)
    if obj is None:
        return None
    patch = _patch(obj, due.fields)
    # A PATCH cannot remove a field (docs/ocpi.md §1.2): an object that lost one is replaced.
    if due.method is Method.PUT or patch is None:
        await call("PUT", obj)
        return None
    try:
        await call("PATCH", patch)
    except PartnerCallError as refused:
        if refused.transient:
            raise
        await _get_then_put(call, obj, refused)
    return None


def _patch(obj: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The PATCH body of `fields` (with last_updated); None when the object no longer has one of them.

    `name@i` is item i of the list `name`, sent to be appended: a Session's new charging periods
    (docs/cpo-modules.md §4.3: a PATCH of charging_periods adds to what the receiver holds)."""
    patch: dict[str, Any] = {}
    for name, _, index in sorted((f.partition("@") for f in fields), key=lambda f: (f[0], int(f[2] or 0))):
        if name not in obj or (index and int(index) >= len(obj[name])):
            return None
        if index:
            patch.setdefault(name, []).append(obj[name][int(index)])
        else:
            patch[name] = obj[name]
    return patch | {"last_updated": obj["last_updated"]}


async def _post(send: Callable[..., Awaitable[Answered]], body: bytes) -> str | None:
    """POST a new object (a CDR); its Location header. A refusal saying the object already exists means it arrived
    (a resend after a crash: docs/cpo-modules.md §10 D7)."""
    try:
        answered = await send("POST", msgspec.Raw(body))
    except PartnerCallError as exc:
        already = exc.status_code is not None and 2000 <= exc.status_code < 3000
        if already and "exist" in (exc.status_message or "").lower():
            return None
        raise
    location: str | None = answered.headers.get("Location")
    return location


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
