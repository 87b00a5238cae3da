"""Review sessions: notes (at a frame or a frame range, with an optional drawing, and replies),
playlists of versions, and decisions on versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bifrost_core.db.base import Base, BigId, IdMixin, JsonDict, utcnow

PLAYLIST_KINDS = ("daily", "client", "other")
DECISIONS = ("approve", "request_changes")


class Note(IdMixin, Base):
    __tablename__ = "notes"
    __table_args__ = (CheckConstraint("frame_in IS NULL OR frame_in <= frame_out", name="frame_range"),)

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
    # The note this one answers: a reply belongs to the same target as its parent.
    parent_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("notes.id", ondelete="CASCADE"), index=True
    )
    # Version notes only: the frame (frame_in == frame_out) or frame range they are about.
    frame_in: Mapped[int | None]
    frame_out: Mapped[int | None]
    # Strokes drawn over the frame (reviews.schemas.Drawing), coordinates relative to the image.
    drawing: Mapped[dict[str, Any] | None] = mapped_column(JsonDict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Playlist(IdMixin, Base):
    """An ordered list of versions to review together: a daily, a client review."""

    __tablename__ = "playlists"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="daily")
    # Clients see only the playlists shared with them.
    shared_with_clients: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    items: Mapped[list[PlaylistItem]] = relationship(
        lazy="selectin", order_by="PlaylistItem.position", cascade="all, delete-orphan"
    )


class PlaylistItem(IdMixin, Base):
    __tablename__ = "playlist_items"
    __table_args__ = (UniqueConstraint("playlist_id", "version_id"),)

    playlist_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("playlists.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]


class Decision(IdMixin, Base):
    """Approve or request changes: what moved a version (and its task) along the workflow."""

    __tablename__ = "review_decisions"

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    playlist_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("playlists.id", ondelete="SET NULL"))
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    decision: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    version_status: Mapped[str] = mapped_column(String(32))
    task_status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
