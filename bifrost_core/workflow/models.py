"""Per-project status workflow: the statuses of tasks and versions and their transitions."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin

WORKFLOW_KINDS = ("task", "version")


class Status(IdMixin, Base):
    __tablename__ = "statuses"
    __table_args__ = (UniqueConstraint("project_id", "kind", "code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    is_initial: Mapped[bool] = mapped_column(default=False)
    is_final: Mapped[bool] = mapped_column(default=False)
    sort_order: Mapped[int] = mapped_column(default=0)
    # The task status a task moves to when a new version of it is published (one at most).
    on_new_version: Mapped[bool] = mapped_column(default=False)


class Transition(IdMixin, Base):
    __tablename__ = "status_transitions"
    __table_args__ = (UniqueConstraint("project_id", "kind", "from_code", "to_code"),)

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_code: Mapped[str] = mapped_column(String(32))
    to_code: Mapped[str] = mapped_column(String(32))
