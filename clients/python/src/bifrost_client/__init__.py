"""Bifrost's Python client for DCC tools and scripts: needs only httpx and pydantic.

    from bifrost_client import BifrostClient

    with BifrostClient("http://bifrost:8000", token) as bifrost:
        shot = bifrost.get("shots", 42)
        for shot in bifrost.list(f"/projects/{shot['project_id']}/shots", status="active"):
            ...
        version = bifrost.publish(task_id=7, comment="blocking pass")
        run = bifrost.start_flow(project_id, "ingest", {"source": "/deliveries/0412"})
        print(bifrost.wait(run["run_id"])["summary"])
        job = bifrost.submit_render(
            project_id, task_id=7, frames="1001-1100", scene="/shows/x/sh010.blend",
            command=["blender", "-b", "{scene}", "-o", "{output}", "-s", "{first}", "-e", "{last}", "-a"],
        )
        print(bifrost.wait_render(job.id).state)

It imports nothing of the server (no FastAPI, SQLAlchemy, Prefect or bifrost_core), so it
installs into Maya's, Houdini's, Nuke's or Blender's Python (see README.md).
"""

from bifrost_client.client import FINAL_STATES, RENDER_FINAL_STATES, ApiError, BifrostClient
from bifrost_client.models import RenderJob, Version

__all__ = ["FINAL_STATES", "RENDER_FINAL_STATES", "ApiError", "BifrostClient", "RenderJob", "Version"]
