"""Project, Episode, Sequence, Shot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, TimestampMixin

PROJECT_STATUSES = ("active", "closed", "archived")
SHOT_STATUSES = ("active", "on_hold", "omitted")


class Project(IdMixin, TimestampMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("frame_padding BETWEEN 1 AND 10", name="padding"),
        CheckConstraint("fps > 0", name="fps"),
        CheckConstraint("resolution_width > 0 AND resolution_height > 0", name="resolution"),
    )

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    fps: Mapped[Decimal] = mapped_column(Numeric(8, 3), default=Decimal("24"))
    resolution_width: Mapped[int] = mapped_column(default=1920)
    resolution_height: Mapped[int] = mapped_column(default=1080)
    frame_padding: Mapped[int] = mapped_column(default=4)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Tier name -> root URL; empty means the studio defaults from Settings.
    storage_tiers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Naming rules, published path templates and other per-project pipeline configuration.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Episode(IdMixin, TimestampMixin, Base):
    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")


class Sequence(IdMixin, TimestampMixin, Base):
    __tablename__ = "sequences"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    episode_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("episodes.id", ondelete="SET NULL"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class Shot(IdMixin, TimestampMixin, Base):
    __tablename__ = "shots"
    __table_args__ = (
        UniqueConstraint("sequence_id", "code"),
        CheckConstraint("frame_in <= frame_out", name="frame_range"),
        CheckConstraint("handles_in >= 0 AND handles_out >= 0", name="handles"),
        CheckConstraint("cut_in IS NULL OR cut_out IS NULL OR cut_in <= cut_out", name="cut_range"),
    )

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sequence_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sequences.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    frame_in: Mapped[int] = mapped_column(default=1001)
    frame_out: Mapped[int] = mapped_column(default=1100)
    handles_in: Mapped[int] = mapped_column(default=0)
    handles_out: Mapped[int] = mapped_column(default=0)
    cut_in: Mapped[int | None]
    cut_out: Mapped[int | None]
    fps: Mapped[Decimal | None] = mapped_column(Numeric(8, 3))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
