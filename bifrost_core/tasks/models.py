"""TaskType and Task: a unit of work on a shot or an asset, with assignees and a status."""

from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bifrost_core.db.base import Base, BigId, IdMixin, TimestampMixin
from bifrost_core.users.models import User

task_assignees = Table(
    "task_assignees",
    Base.metadata,
    Column("task_id", BigId, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class TaskType(IdMixin, TimestampMixin, Base):
    __tablename__ = "task_types"
    __table_args__ = (UniqueConstraint("project_id", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")


class Task(IdMixin, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # NULLs never collide, so each pair only bites on its own kind of entity.
        UniqueConstraint("shot_id", "name"),
        UniqueConstraint("asset_id", "name"),
        CheckConstraint("(shot_id IS NULL) <> (asset_id IS NULL)", name="one_entity"),
    )

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    task_type_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("task_types.id", ondelete="RESTRICT"), index=True
    )
    shot_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    due_date: Mapped[date | None]

    assignees: Mapped[list[User]] = relationship(secondary=task_assignees, lazy="selectin")
