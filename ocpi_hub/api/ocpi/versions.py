"""Versions module, our side (OCPI 2.2.1 §6.1, §6.2): the versions list and each version's details."""

from __future__ import annotations

from litestar import get

from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.authentication import Access
from ocpi_hub.api.ocpi.transport import envelope
from ocpi_hub.ocpi.versions import SUPPORTED, Endpoint, Version, VersionDetails


@get("/ocpi/versions", include_in_schema=False, opt={"access": Access.VERSIONS})
async def versions(config: deps.Config, now: deps.Clock) -> object:
    data = [Version(version=v, url=f"{config.public_url}/ocpi/{v}") for v in SUPPORTED]
    return envelope(data, now=now)


@get("/", opt={"access": Access.VERSIONS})
async def version_details(config: deps.Config, now: deps.Clock, version: deps.Version, modules: deps.Modules) -> object:
    base = f"{config.public_url}/ocpi/{version}"
    endpoints = [Endpoint(identifier=m, role=r, url=f"{base}/{m}") for m, r in modules]
    return envelope(VersionDetails(version=version, endpoints=endpoints), now=now)
