"""FlowRun: which project a Prefect flow run of a Bifrost flow belongs to.

Prefect keeps the run itself (state, logs, artifacts); this row makes the run id a
project-scoped id like any other, so another project's run answers 404. A run started
through Bifrost is recorded first, pending (`run_id` empty, `parameters` kept to start it),
and gets its Prefect run id once Prefect has created the run; a run started elsewhere (the
Prefect UI or CLI) is recorded by the flow itself when it begins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, JsonDict, utcnow


class FlowRun(IdMixin, Base):
    __tablename__ = "flow_runs"

    run_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    flow: Mapped[str] = mapped_column(String(64))
    # What the pending run is to be started with; cleared once it is started.
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JsonDict)
    # "user id:Idempotency-Key" of the request that asked for it: a retry finds this record.
    request_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    # The Prefect run's idempotency key (see runs/service.py).
    start_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
