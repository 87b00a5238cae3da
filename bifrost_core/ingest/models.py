"""What ingest remembers so that a rerun finds its work done.

IngestRecord: one row per version an ingest or publish created, keyed by the content
manifest (target, representations, file names, content hashes). The unique
constraint is the last word on "already done", also under concurrent reruns.

IngestFile: the last seen (size, mtime) of a source file and the blob its bytes
hashed to, so an unchanged file is recognised from one stat() instead of a re-read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class IngestRecord(IdMixin, Base):
    __tablename__ = "ingest_records"
    __table_args__ = (UniqueConstraint("project_id", "key"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestFile(IdMixin, Base):
    __tablename__ = "ingest_files"
    # Paths can be long and non-ASCII: the unique key is their hash, the path is kept for people.
    __table_args__ = (UniqueConstraint("project_id", "path_key"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"))
    path_key: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    blob_id: Mapped[int] = mapped_column(BigId, ForeignKey("blobs.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
