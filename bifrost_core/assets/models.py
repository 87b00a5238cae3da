"""AssetType, Asset and Casting (which assets appear in which shot)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, TimestampMixin

ASSET_STATUSES = ("active", "on_hold", "omitted")


class AssetType(IdMixin, TimestampMixin, Base):
    __tablename__ = "asset_types"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")


class Asset(IdMixin, TimestampMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    asset_type_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("asset_types.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Casting(IdMixin, TimestampMixin, Base):
    __tablename__ = "castings"
    __table_args__ = (
        UniqueConstraint("shot_id", "asset_id"),
        CheckConstraint("count >= 1", name="count"),
    )

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    shot_id: Mapped[int] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int] = mapped_column(BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    count: Mapped[int] = mapped_column(default=1)
