"""FlowRun: which project a Prefect flow run started through Bifrost belongs to.

Prefect keeps the run itself (state, logs, artifacts); this row makes the run id a
project-scoped id like any other, so another project's run answers 404.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, utcnow


class FlowRun(IdMixin, Base):
    __tablename__ = "flow_runs"

    run_id: Mapped[str] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    flow: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
