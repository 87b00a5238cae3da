"""Deployments of the registry's flows (flows/registry.py) on their work pools.

`bifrost deploy` (or `python -m deployments.flows`) creates the pools that are missing and
every deployment in one step, once per release; `bifrost deploy --prefect-yaml` writes
`prefect.yaml` from the same registry, for `prefect deploy --all`. Workers of a pool run
each flow run in a subprocess of the worker's own environment, where Bifrost is installed
and the BIFROST_* settings (database URL, tier roots) point at the studio's services.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import yaml

from flows.registry import FLOWS, ROOT, FlowEntry

# Pools the registry's entries name: all process pools today (a GPU pool joins here).
POOL_TYPES = {"bifrost-process": "process", "bifrost-gpu": "process"}
PREFECT_YAML = ROOT / "prefect.yaml"
_HEADER = """\
# Deployments of Bifrost's flows for `prefect deploy --all` (run from the repository root).
# GENERATED from flows/registry.py by `bifrost deploy --prefect-yaml`: edit the registry, not
# this file (a test checks that the two agree). `bifrost deploy` registers the same
# deployments and creates their work pools, which `prefect deploy` does not.
#
# How a studio runs it (see README "Prefect server and workers"):
#   1. a Prefect server:  prefect server start --host 0.0.0.0   (PostgreSQL via
#      PREFECT_API_DATABASE_CONNECTION_URL, Redis messaging for several server replicas)
#   2. everywhere else:  export PREFECT_API_URL=http://<server>:4200/api
#   3. the work pools and deployments, once per release:  bifrost deploy
#   4. workers on the ingest hosts (they see the delivery folders and the storage tiers):
#        prefect worker start --pool bifrost-process
#      with Bifrost installed and BIFROST_DATABASE_URL / BIFROST_HOT_ROOT / ... set.
#
# No pull section: the deployments record the repository folder they were made from, and
# workers run the flows from that path (a shared checkout, or the same path on every host).
# Every run acts as its `actor` (a Bifrost username, recorded on all it writes), so no
# deployment fills it in: the Prefect UI asks for it; a schedule names a service user.
"""


def deployment_spec(entry: FlowEntry) -> dict[str, Any]:
    """The entry as a `prefect.yaml` deployment (the same fields `register` sets)."""
    return {
        "name": entry.name,
        "entrypoint": entry.entrypoint,
        "description": entry.description,
        "tags": list(entry.tags),
        "concurrency_limit": entry.concurrency_limit,
        "parameters": {},
        "enforce_parameter_schema": True,
        "schedules": [dict(schedule) for schedule in entry.schedules],
        "triggers": [dict(trigger) for trigger in entry.triggers],
        "work_pool": {"name": entry.work_pool, "work_queue_name": "default", "job_variables": {}},
    }


def prefect_yaml(entries: list[FlowEntry] | None = None) -> str:
    """The text of `prefect.yaml` for the registry's flows."""
    document = {
        "name": "bifrost",
        "build": None,
        "push": None,
        "deployments": [deployment_spec(entry) for entry in entries or FLOWS.values()],
    }
    return _HEADER + "\n" + yaml.safe_dump(document, sort_keys=False, width=100)


def ensure_pools(names: set[str]) -> None:
    """Create the work pools the server lacks (a pool that exists is left as it is)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> None:
        async with get_client() as client:
            for name in sorted(names):
                with contextlib.suppress(ObjectAlreadyExists):
                    await client.create_work_pool(
                        WorkPoolCreate(name=name, type=POOL_TYPES.get(name, "process"))
                    )

    asyncio.run(create())


def register(entries: list[FlowEntry] | None = None) -> dict[str, str]:
    """Create the pools and create or update the deployments; returns deployment name -> id."""
    from prefect import flow
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from prefect.schedules import Schedule
    from pydantic import TypeAdapter

    chosen = entries or list(FLOWS.values())
    ensure_pools({entry.work_pool for entry in chosen})
    triggers = TypeAdapter(DeploymentTriggerTypes)
    ids = {}
    for entry in chosen:
        spec = deployment_spec(entry)
        deployment_id = flow.from_source(source=str(ROOT), entrypoint=entry.entrypoint).deploy(
            name=entry.name,
            work_pool_name=entry.work_pool,
            description=entry.description,
            concurrency_limit=entry.concurrency_limit,
            tags=spec["tags"],
            parameters=spec["parameters"],
            enforce_parameter_schema=spec["enforce_parameter_schema"],
            schedules=[Schedule(**_schedule(item)) for item in spec["schedules"]],
            triggers=[triggers.validate_python(item) for item in spec["triggers"]],
            print_next_steps=False,
        )
        ids[entry.name] = str(deployment_id)
    return ids


def _schedule(item: dict[str, Any]) -> dict[str, Any]:
    """A prefect.yaml schedule as Schedule's arguments (an interval is in seconds there)."""
    if "interval" in item:
        return {**item, "interval": timedelta(seconds=item["interval"])}
    return item


if __name__ == "__main__":
    for deployment, deployment_id in register().items():
        print(f"{deployment}: {deployment_id}")
