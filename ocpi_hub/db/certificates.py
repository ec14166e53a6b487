"""Client certificates uploaded for the station gateway's mutual TLS (seed 002 `/certificate`), by the base64
SHA-256 hash of their DER bytes (ocpi_hub.certificates.der_hash)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict


class Certificate(Base):
    __tablename__ = "certificates"

    certificate_hash: Mapped[str] = mapped_column(String(44), primary_key=True)
    certificate: Mapped[str] = mapped_column(Text)  # PEM
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime)


async def put(session: AsyncSession, certificate_hash: str, pem: str, *, now: datetime) -> None:
    """Store the certificate; uploading it again changes nothing but the upload time.

    One INSERT … ON CONFLICT: two first uploads of a certificate at once then both succeed (reading first and
    inserting when absent let both insert, and one fail on the key)."""
    statement = insert_on_conflict(session, Certificate).values(
        certificate_hash=certificate_hash, certificate=pem, uploaded_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Certificate.certificate_hash],
            set_={"certificate": statement.excluded.certificate, "uploaded_at": statement.excluded.uploaded_at},
        )
    )


async def get(session: AsyncSession, certificate_hash: str) -> str | None:
    row = await session.get(Certificate, certificate_hash)
    return row.certificate if row else None


async def remove(session: AsyncSession, certificate_hash: str) -> bool:
    """Delete the certificate; False when there was none."""
    row = await session.get(Certificate, certificate_hash)
    if row is None:
        return False
    await session.delete(row)
    return True
