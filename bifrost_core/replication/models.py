"""A verified copy of a blob location on one of its tier's replicas.

Recorded per blob location (not per blob) because replicas belong to a tier: a blob that
lives in hot and archive has a copy on each tier's replicas, and a location that goes
away (a tier move, gc) takes its copies' records with it (ON DELETE CASCADE), so the
lag of the other tier's replicas is still counted from its own locations. A row exists
only once the replica's bytes were read back and hashed to the blob's digest; `verified_at`
is when that last held (at the copy, then at each `verify`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class BlobReplica(IdMixin, Base):
    __tablename__ = "blob_replicas"
    __table_args__ = (UniqueConstraint("location_id", "replica"),)

    location_id: Mapped[int] = mapped_column(BigId, ForeignKey("blob_locations.id", ondelete="CASCADE"))
    # The replica's root in normal form (bifrost_core.storage.roots.normalise_root).
    replica: Mapped[str] = mapped_column(String(1024))
    url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
