"""Blob (stored content, by hash) and where copies of it live (tier, URL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class Blob(IdMixin, Base):
    __tablename__ = "blobs"

    hash: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlobLocation(IdMixin, Base):
    __tablename__ = "blob_locations"
    __table_args__ = (UniqueConstraint("blob_id", "tier"),)

    blob_id: Mapped[int] = mapped_column(BigId, ForeignKey("blobs.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None]


class BlobLease(IdMixin, Base):
    """A running ingest's claim on a blob it stored or found, held from just after the store
    until its versions are registered; `storage gc` leaves a leased blob alone (see leases.py).
    No foreign key: the blob's record usually does not exist yet."""

    __tablename__ = "blob_leases"

    hash: Mapped[str] = mapped_column(String(64), index=True)
    holder: Mapped[str] = mapped_column(String(128), index=True)
    expires_at: Mapped[datetime]
