from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.errors import NotFound
from bifrost_core.runs.models import FlowRun


class FlowRunRepository(Repository[FlowRun]):
    model = FlowRun
    label = "flow run"

    def by_run_id(self, run_id: str) -> FlowRun:
        run = self.first(FlowRun.run_id == run_id)
        if run is None:
            raise NotFound(f"flow run {run_id} not found")
        return run
