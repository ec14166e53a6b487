"""The dependencies handlers ask for by name (wired in app.create_app)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.bell import Bell as _Bell
from ocpi_hub.client import OcpiClient
from ocpi_hub.ocpi.versions import InterfaceRole, ModuleID
from ocpi_hub.settings import Settings

# (module, our role) of every module the hub serves; each is mounted at /ocpi/{version}/{module}.
ModuleList = list[tuple[ModuleID, InterfaceRole]]

Db = NamedDependency[AsyncSession]  # a session per request
Sessions = NamedDependency[async_sessionmaker[AsyncSession]]  # for work that spans partner calls
Client = NamedDependency[OcpiClient]
Config = NamedDependency[Settings]
Clock = NamedDependency[Callable[[], datetime]]
Version = NamedDependency[str]  # the OCPI version of the router the request came through
Modules = NamedDependency[ModuleList]
Bell = NamedDependency[_Bell]  # rung when a command was received (long polls)
