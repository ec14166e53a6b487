"""Charge stations and what the station gateway must apply to them: settings, certificates, triggers, each with
the status the gateway reports (seed 002 `/cs/{csId}...`). One row per setting name, certificate and trigger type:
asking again replaces the request and makes it Pending again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub import errors
from ocpi_hub.certificates import normalise_hash
from ocpi_hub.csms import chargestation as csms
from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict


class ChargeStation(Base):
    __tablename__ = "charge_stations"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # the seed's csId
    security_profile: Mapped[int] = mapped_column(Integer)
    base64_sha256_password: Mapped[str | None] = mapped_column(String(44))
    invalid_username_allowed: Mapped[bool | None] = mapped_column(Boolean)
    registration_status: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _station_id() -> Mapped[str]:
    return mapped_column(String(48), ForeignKey("charge_stations.id"), primary_key=True)


class ChargeStationSetting(Base):
    __tablename__ = "charge_station_settings"

    cs_id: Mapped[str] = _station_id()
    name: Mapped[str] = mapped_column(String(csms.SETTING_NAME_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(String(csms.SETTING_VALUE_MAX))
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChargeStationCertificate(Base):
    __tablename__ = "charge_station_certificates"

    cs_id: Mapped[str] = _station_id()
    certificate_hash: Mapped[str] = mapped_column(String(44), primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    certificate: Mapped[str] = mapped_column(Text)  # PEM
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChargeStationTrigger(Base):
    __tablename__ = "charge_station_triggers"

    cs_id: Mapped[str] = _station_id()
    trigger: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReportConflictError(errors.Conflict):
    """A gateway report about something that was never asked of the station, or was asked differently since."""


async def get(session: AsyncSession, cs_id: str) -> ChargeStation | None:
    return await session.get(ChargeStation, cs_id)


async def _upsert(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]], *, keep: tuple[str, ...] = ()
) -> None:
    """Insert these rows of `model`, or replace (all but the key and `keep`) those whose primary key is taken, and
    commit. One INSERT … ON CONFLICT per row: two first writes of a key at once then both succeed, the last one
    winning (reading first and inserting when absent let both insert, and one fail on the key). Rows go in key
    order, so that two writers of the same rows lock them in the same order on PostgreSQL (never a deadlock)."""
    if rows:
        key = [column.name for column in model.__table__.primary_key]
        statement = insert_on_conflict(session, model)
        replaced = {name: statement.excluded[name] for name in rows[0] if name not in (*key, *keep)}
        await session.execute(
            statement.on_conflict_do_update(index_elements=key, set_=replaced),
            sorted(rows, key=lambda row: [row[name] for name in key]),
        )


async def register(session: AsyncSession, cs_id: str, auth: csms.ChargeStationAuth, *, now: datetime) -> None:
    """Register the station, or register it again with new auth details: either way it is Pending (the seed:
    "assume that the charge station has not yet been provisioned"). What was asked of it before stays."""
    station = {
        "id": cs_id,
        "security_profile": auth.security_profile,
        "base64_sha256_password": auth.base64_sha256_password,
        "invalid_username_allowed": auth.invalid_username_allowed,
        "registration_status": csms.StationRegistrationStatus.PENDING,
        "registered_at": now,
        "updated_at": now,
    }
    await _upsert(session, ChargeStation, [station], keep=("registered_at",))  # the first registration's


async def reconfigure(session: AsyncSession, cs_id: str, settings: Mapping[str, str], *, now: datetime) -> None:
    rows = [
        {"cs_id": cs_id, "name": name, "value": value, "status": csms.SettingStatus.PENDING, "updated_at": now}
        for name, value in settings.items()
    ]
    await _upsert(session, ChargeStationSetting, rows)


async def install_certificates(
    session: AsyncSession, cs_id: str, certificates: Mapping[str, csms.InstallCertificate], *, now: datetime
) -> None:
    """Record certificates by their hash, the PEM already checked (and made canonical) by the caller."""
    rows = [
        {
            "cs_id": cs_id,
            "certificate_hash": certificate_hash,
            "type": item.type,
            "certificate": item.certificate,
            "status": item.status,
            "updated_at": now,
        }
        for certificate_hash, item in certificates.items()
    ]
    await _upsert(session, ChargeStationCertificate, rows)


async def trigger(session: AsyncSession, cs_id: str, trigger: csms.TriggerType, *, now: datetime) -> None:
    row = {"cs_id": cs_id, "trigger": trigger, "status": csms.TriggerStatus.PENDING, "updated_at": now}
    await _upsert(session, ChargeStationTrigger, [row])


async def details(
    session: AsyncSession, cs_id: str
) -> tuple[list[ChargeStationSetting], list[ChargeStationCertificate], list[ChargeStationTrigger]]:
    """What was asked of the station, each kind sorted by its key (in Python: the databases collate differently)."""
    settings = await session.scalars(select(ChargeStationSetting).where(ChargeStationSetting.cs_id == cs_id))
    certificates = await session.scalars(
        select(ChargeStationCertificate).where(ChargeStationCertificate.cs_id == cs_id)
    )
    triggers = await session.scalars(select(ChargeStationTrigger).where(ChargeStationTrigger.cs_id == cs_id))
    return (
        sorted(settings, key=lambda r: r.name),
        sorted(certificates, key=lambda r: r.certificate_hash),
        sorted(triggers, key=lambda r: r.trigger),
    )


async def apply_report(
    session: AsyncSession, station: ChargeStation, report: csms.ChargeStationReport, *, now: datetime
) -> None:
    """Record what the gateway did, all or nothing: ReportConflictError (nothing written) names the first entry
    that matches no request."""
    for i, s in enumerate(report.settings):
        setting = await session.get(ChargeStationSetting, (station.id, s.name))
        if setting is None or setting.value != s.value:
            raise ReportConflictError(f"settings[{i}]: no request to set {s.name!r} to {s.value!r}")
        setting.status, setting.updated_at = s.status, now
    for i, c in enumerate(report.certificates):
        key = normalise_hash(c.certificate_hash)
        certificate = await session.get(ChargeStationCertificate, (station.id, key)) if key else None
        if certificate is None:
            raise ReportConflictError(f"certificates[{i}]: no certificate {c.certificate_hash!r} to install")
        certificate.status, certificate.updated_at = c.status, now
    for i, t in enumerate(report.triggers):
        requested = await session.get(ChargeStationTrigger, (station.id, t.trigger))
        if requested is None:
            raise ReportConflictError(f"triggers[{i}]: {t.trigger} was never requested")
        requested.status, requested.updated_at = t.status, now
    if report.registration_status is not None:
        station.registration_status = report.registration_status
    station.updated_at = now
