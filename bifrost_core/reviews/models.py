"""Notes: review feedback on a version, a shot or an asset."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class Note(IdMixin, Base):
    __tablename__ = "notes"

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("versions.id", ondelete="CASCADE"), index=True
    )
    shot_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    # "internal" notes stay in the studio; "client" notes are shared with client reviewers.
    visibility: Mapped[str] = mapped_column(String(16), default="internal", server_default="internal")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
