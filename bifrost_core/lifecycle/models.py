"""Archive policies, shots marked final, versions archived, and restores waiting on a cold tier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class ArchivePolicy(IdMixin, Base):
    """A project's archive rules (schemas.PolicyRules), checked when set."""

    __tablename__ = "archive_policies"

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShotFinal(IdMixin, Base):
    """A shot marked final (delivered): the `final_shot_after_days` rule counts from `marked_at`."""

    __tablename__ = "shot_finals"

    shot_id: Mapped[int] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), unique=True)
    marked_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchivedVersion(IdMixin, Base):
    """A version whose every blob has a verified copy in `tier`: it no longer needs a hot
    copy, so a blob all of whose versions are archived (and not restored) may leave the hot
    tier. A restore sets `restored_at`: the version is hot again, and the policies leave it
    there for the policy's `restored_hold_days`."""

    __tablename__ = "archived_versions"

    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), unique=True)
    tier: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(32))
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[datetime | None]


class RestoreRequest(IdMixin, Base):
    """A restore asked of a tier with a restore delay (cold storage): ready at `ready_at`."""

    __tablename__ = "restore_requests"

    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("versions.id", ondelete="CASCADE"), unique=True)
    tier: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime]
