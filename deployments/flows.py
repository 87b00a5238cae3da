"""Deployments of the registry's flows (flows/registry.py) on their work pools.

`bifrost deploy` (or `python -m deployments.flows`) creates the pools that are missing, every
deployment and the zombie-run automation (deployments/automations.py) in one step, once per
release; `bifrost deploy --prefect-yaml` writes `prefect.yaml` from the same registry, for
`prefect deploy --all`. Workers of a pool run each flow run in a subprocess of the worker's
own environment, where Bifrost is installed and the BIFROST_* settings (database URL, tier
roots) point at the studio's services.

Where the code comes from: every deployment's one pull step moves the run into the
worker's clone of this repository, `{{ $BIFROST_CHECKOUT }}`, an environment variable of the
worker (`bifrost worker` sets it to its own repository root). Prefect resolves `{{ $NAME }}`
from the environment of the process that runs the step, i.e. on the worker at each run; an
unset variable becomes an empty path and the run fails at its pull step.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import yaml

from flows.registry import FLOWS, GPU_POOL, ROOT, WORK_POOL, FlowEntry

# Every pool Bifrost uses, created by `bifrost deploy` whether or not an entry names it yet.
POOL_TYPES = {WORK_POOL: "process", GPU_POOL: "process"}
CHECKOUT_VARIABLE = "BIFROST_CHECKOUT"
PULL_STEPS = [
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $" + CHECKOUT_VARIABLE + " }}"}}
]
PREFECT_YAML = ROOT / "prefect.yaml"
_HEADER = """\
# Deployments of Bifrost's flows for `prefect deploy --all` (run from the repository root).
# GENERATED from flows/registry.py by `bifrost deploy --prefect-yaml`: edit the registry, not
# this file (a test checks that the two agree). `bifrost deploy` registers the same
# deployments and also creates their work pools, the service user `bifrost-service` the
# schedules act as, and the zombie-run automation, which `prefect deploy` does not.
#
# How a studio runs it (see README "Prefect server and workers"):
#   1. a Prefect server:  prefect server start --host 0.0.0.0   (PostgreSQL via
#      PREFECT_API_DATABASE_CONNECTION_URL, Redis messaging for several server replicas)
#   2. everywhere else:  export PREFECT_API_URL=http://<server>:4200/api
#   3. the work pools, deployments, service user and automation, once per release:
#        bifrost deploy
#   4. workers, on hosts with a clone of this repository and Bifrost installed from it:
#        bifrost worker --pool bifrost-cpu                 (ingest, publish, upkeep, render queue)
#        bifrost worker --pool bifrost-gpu --gpus 2        (render chunks)
#      or `prefect worker start --pool bifrost-cpu` with BIFROST_CHECKOUT=<the clone> and
#      PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 exported; BIFROST_DATABASE_URL, BIFROST_HOT_ROOT,
#      ... set either way.
#
# Pull step: each run starts in the worker's clone, $BIFROST_CHECKOUT, read on the worker at
# run time. `prefect deploy` replaces `{{ $BIFROST_CHECKOUT }}` when the variable is set where
# it runs: run it with BIFROST_CHECKOUT unset (`bifrost deploy` never replaces it).
# Variants (replace the `pull` section below; see README):
#   code from git, cloned per run (a private repository: add `access_token:
#   "{{ prefect.blocks.secret.git-token }}"`):
#     pull:
#     - prefect.deployments.steps.git_clone:
#         repository: https://git.example.com/studio/bifrost.git
#         branch: main
#   code from a bucket (prefect-aws installed on the workers; the code uploaded there by
#   a `push` step `prefect_aws.deployments.steps.push_to_s3` or by CI):
#     pull:
#     - prefect_aws.deployments.steps.pull_from_s3:
#         requires: prefect-aws
#         bucket: studio-code
#         folder: bifrost/release-42
#
# Every run acts as its `actor` (a Bifrost username, recorded on all it writes), so no
# deployment fills it in: the Prefect UI asks for it; a schedule names the service user.
# Schedules are in UTC unless they name a `timezone`.
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
        "pull": PULL_STEPS,
        "deployments": [deployment_spec(entry) for entry in entries or FLOWS.values()],
    }
    return _HEADER + "\n" + yaml.safe_dump(document, sort_keys=False, width=100)


def ensure_pools(names: set[str]) -> dict[str, str]:
    """Create the work pools the server lacks (a pool that exists is left as it is);
    returns pool -> "created" or "exists"."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> dict[str, str]:
        done = {}
        async with get_client() as client:
            for name in sorted(names):
                done[name] = "exists"
                with contextlib.suppress(ObjectAlreadyExists):
                    await client.create_work_pool(
                        WorkPoolCreate(name=name, type=POOL_TYPES.get(name, "process"))
                    )
                    done[name] = "created"
        return done

    return asyncio.run(create())


def checkout_storage() -> Any:
    """Where a deployment's code is: this repository when deploying (Prefect loads the flow
    from it to read its parameters), the worker's clone when running (the pull step)."""
    from prefect.runner.storage import LocalStorage

    class Checkout(LocalStorage):
        def to_pull_step(self) -> list[dict[str, Any]]:
            return PULL_STEPS

    return Checkout(str(ROOT))


def register(entries: list[FlowEntry] | None = None) -> dict[str, str]:
    """Create or update the deployments (their pools must exist); returns deployment name -> id."""
    from prefect import flow
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from prefect.schedules import Schedule
    from pydantic import TypeAdapter

    chosen = entries or list(FLOWS.values())
    triggers = TypeAdapter(DeploymentTriggerTypes)
    ids = {}
    for entry in chosen:
        spec = deployment_spec(entry)
        loaded = flow.from_source(source=checkout_storage(), entrypoint=entry.entrypoint)
        # to_deployment + apply: what `.deploy()` does for a process pool, without its printout.
        deployment = loaded.to_deployment(
            name=entry.name,
            work_pool_name=entry.work_pool,
            description=entry.description,
            concurrency_limit=entry.concurrency_limit,
            tags=spec["tags"],
            parameters=spec["parameters"],
            enforce_parameter_schema=spec["enforce_parameter_schema"],
            schedules=[Schedule(**_schedule(item)) for item in spec["schedules"]],
            triggers=[triggers.validate_python(item) for item in spec["triggers"]],
        )
        deployment_id = deployment.apply(work_pool_name=entry.work_pool)
        ids[entry.name] = str(deployment_id)
    return ids


def _schedule(item: dict[str, Any]) -> dict[str, Any]:
    """A prefect.yaml schedule as Schedule's arguments (an interval is in seconds there)."""
    if "interval" in item:
        return {**item, "interval": timedelta(seconds=item["interval"])}
    return item


if __name__ == "__main__":
    for pool, what in ensure_pools(set(POOL_TYPES)).items():
        print(f"pool {pool}: {what}")
    for deployment, deployment_id in register().items():
        print(f"{deployment}: {deployment_id}")
