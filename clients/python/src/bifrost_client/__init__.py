"""Bifrost's Python client for DCC tools and scripts: needs only httpx and pydantic.

    from bifrost_client import BifrostClient

    with BifrostClient("http://bifrost:8000", token) as bifrost:
        shot = bifrost.get("shots", 42)
        for shot in bifrost.list(f"/projects/{shot['project_id']}/shots", status="active"):
            ...
        version = bifrost.publish(task_id=7, comment="blocking pass")
        run = bifrost.start_flow(project_id, "ingest", {"source": "/deliveries/0412"})
        print(bifrost.wait(run["run_id"])["summary"])

It imports nothing of the server (no FastAPI, SQLAlchemy, Prefect or bifrost_core), so it
installs into Maya's, Houdini's, Nuke's or Blender's Python (see README.md).
"""

from bifrost_client.client import FINAL_STATES, ApiError, BifrostClient
from bifrost_client.models import Version

__all__ = ["FINAL_STATES", "ApiError", "BifrostClient", "Version"]
