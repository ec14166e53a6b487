"""Sessions module, Sender interface besides the list (OCPI 2.2.1 §9.2.1.2; docs/cpo-modules.md §4.5): the
eMSP's `PUT {sessions}/{session_id}/charging_preferences`.

We offer no preference-based smart charging (no EVSE has CHARGING_PREFERENCES_CAPABLE), so a valid request about
one of the caller's Sessions is answered NOT_POSSIBLE; another eMSP's Session, or an unknown one, is a 404 with
status 2001, like every object the caller may not see (docs/cpo-modules.md §4.7).
"""

from __future__ import annotations

from litestar import put
from litestar.params import FromPath

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.authentication import caller
from ocpi_hub.api.ocpi.transport import AnyRequest, decode_body, envelope, routing_headers
from ocpi_hub.db import sessions
from ocpi_hub.ocpi.common import StatusCode
from ocpi_hub.ocpi.sessions import ChargingPreferences, ChargingPreferencesResponse


@put("/{session_id:str}/charging_preferences")
async def charging_preferences(
    request: AnyRequest, session_id: FromPath[str], db: deps.Db, config: deps.Config, now: deps.Clock
) -> object:
    """Mounted under /ocpi/{version}/sessions, beside the Sender list."""
    await decode_body(request, ChargingPreferences)
    who = caller(request)
    found = await sessions.session_document(db, session_id, version="2.2.1")
    if found is None or found.reader not in who.parties:
        raise errors.NotFound(f"unknown session {session_id}", ocpi_status=StatusCode.INVALID_PARAMETERS)
    headers = routing_headers(request, config, who.party)
    return envelope(ChargingPreferencesResponse.NOT_POSSIBLE, now=now, headers=headers)
