"""Versions module, our side (OCPI 2.2.1 §6.1, §6.2): the versions list and each version's details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from litestar import get
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.api.ocpi.transport import Access, AnyRequest, authenticate, envelope
from ocpi_hub.ocpi.versions import SUPPORTED, Endpoint, InterfaceRole, ModuleID, Version, VersionDetails
from ocpi_hub.settings import Settings

# (module, role, path below /ocpi/{version}) of every module the hub serves; set by the app's wiring.
ModuleList = list[tuple[ModuleID, InterfaceRole, str]]


@get("/ocpi/versions")
async def versions(request: AnyRequest, db: AsyncSession, settings: Settings, now: Callable[[], datetime]) -> object:
    await authenticate(request, db, Access.versions)
    data = [Version(version=v, url=f"{settings.public_url}/ocpi/{v}") for v in SUPPORTED]
    return envelope(data, now=now)


@get("/")
async def version_details(
    request: AnyRequest,
    db: AsyncSession,
    settings: Settings,
    now: Callable[[], datetime],
    version: str,
    modules: ModuleList,
) -> object:
    await authenticate(request, db, Access.versions)
    base = f"{settings.public_url}/ocpi/{version}"
    endpoints = [Endpoint(identifier=m, role=r, url=f"{base}{path}") for m, r, path in modules]
    return envelope(VersionDetails(version=version, endpoints=endpoints), now=now)
