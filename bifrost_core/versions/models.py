"""Version (an immutable numbered publish), Representation (one form of it) and its files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow

REPRESENTATION_KINDS = ("frames", "movie", "proxy", "thumbnail", "file")


class VersionCounter(Base):
    """Last number handed out per (task, variant): a row lock makes allocation gapless."""

    __tablename__ = "version_counters"

    task_id: Mapped[int] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class Version(IdMixin, Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("task_id", "variant", "number"),
        CheckConstraint("number >= 1", name="number"),
    )

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    # Copied from the task so that "all versions of a shot" needs no join.
    shot_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    variant: Mapped[str] = mapped_column(String(64), default="main")
    number: Mapped[int]
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The render job whose frames this version is (set by the render flow when it ingests them).
    # use_alter: render_jobs points back at versions, so one of the two keys is added after both tables.
    render_job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("render_jobs.id", ondelete="SET NULL", use_alter=True)
    )
    # Why the review-media flow could not make this version's proxy; None once it could.
    media_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    representations: Mapped[list[Representation]] = relationship(
        back_populates="version", lazy="selectin", order_by="Representation.id"
    )


class Representation(IdMixin, Base):
    __tablename__ = "representations"
    __table_args__ = (
        UniqueConstraint("version_id", "name"),
        CheckConstraint("frame_in IS NULL OR frame_in <= frame_out", name="frame_range"),
    )

    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    frame_in: Mapped[int | None]
    frame_out: Mapped[int | None]
    frame_padding: Mapped[int | None]
    missing_frames: Mapped[str] = mapped_column(String(4096), default="")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)

    version: Mapped[Version] = relationship(back_populates="representations")
    files: Mapped[list[RepresentationFile]] = relationship(lazy="selectin", order_by="RepresentationFile.id")


class RepresentationFile(IdMixin, Base):
    __tablename__ = "representation_files"
    __table_args__ = (UniqueConstraint("representation_id", "name"),)

    representation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("representations.id", ondelete="CASCADE"), index=True
    )
    blob_id: Mapped[int] = mapped_column(BigId, ForeignKey("blobs.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    frame: Mapped[int | None]
    # Where people find the file: its path under the publish root, from the project's path
    # template (hard-linked there on local tiers). Set by ingest and publish.
    published_path: Mapped[str | None] = mapped_column(Text)
