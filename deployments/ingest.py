"""Deployments of the ingest and publish flows on a process work pool.

`prefect.yaml` at the repository root declares the same deployments for `prefect deploy`;
this module registers them from Python (what `register()` does is what a studio's CI or
`python -m deployments.ingest` runs once per release). Workers of the pool run each flow
run in a subprocess of the worker's own environment, where Bifrost is installed and
the BIFROST_* settings (database URL, tier roots) point at the studio's services.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "bifrost-process"
# name, entrypoint, description, how many runs of it may go at once
DEPLOYMENTS = [
    ("ingest", "flows/ingest.py:ingest", "Ingest a delivery folder into a project", 4),
    ("publish", "flows/publish.py:publish", "Publish one version from an artist or a DCC", 16),
]


def ensure_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool if the server has none by that name."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> None:
        async with get_client() as client:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))

    asyncio.run(create())


def register(work_pool: str = WORK_POOL) -> dict[str, str]:
    """Create or update the deployments; returns deployment name -> id."""
    from prefect import flow

    ensure_pool(work_pool)
    ids = {}
    for name, entrypoint, description, limit in DEPLOYMENTS:
        deployment_id = flow.from_source(source=str(ROOT), entrypoint=entrypoint).deploy(
            name=name,
            work_pool_name=work_pool,
            description=description,
            concurrency_limit=limit,
            tags=["bifrost", "ingest"],
            print_next_steps=False,
        )
        ids[name] = str(deployment_id)
    return ids


if __name__ == "__main__":
    for deployment, deployment_id in register().items():
        print(f"{deployment}: {deployment_id}")
