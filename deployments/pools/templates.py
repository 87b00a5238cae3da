"""Base job templates for Kubernetes and ECS work pools running Bifrost's deployments.

Each starts from Prefect's own default for its pool type (shipped with Prefect, the one
`prefect work-pool get-default-base-job-template --type kubernetes|ecs` prints) and changes
only what Bifrost needs: the image (Bifrost installed from a clone at /opt/bifrost), the
environment every run needs (BIFROST_CHECKOUT for the deployments' pull step, the heartbeat
the zombie-run automation listens for), the command, and where the studio's BIFROST_*
settings and credentials come from (a Kubernetes Secret; ECS task-definition secrets).
`python -m deployments.pools.templates` writes them as `<type>.json` here (a test checks
the committed files are these); a studio creates its pool from one:

    prefect work-pool create bifrost-k8s --type kubernetes \\
        --base-job-template deployments/pools/kubernetes.json

and the same deployments run there once their `work_pool` names that pool.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

from deployments.automations import HEARTBEAT_SECONDS

HERE = Path(__file__).resolve().parent
TYPES = ("kubernetes", "ecs")
IMAGE = "registry.example.com/studio/bifrost:latest"
CHECKOUT = "/opt/bifrost"
COMMAND = "prefect flow-run execute"
RUN_ENV = {"BIFROST_CHECKOUT": CHECKOUT, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
_IMAGE_HELP = (
    f"An image with Bifrost installed from a clone of its repository at {CHECKOUT} "
    "(BIFROST_CHECKOUT: the deployments' pull step runs the flow from there)."
)
_ENV_HELP = (
    "Environment of each run. BIFROST_CHECKOUT: where the image holds Bifrost's clone (the pull "
    "step's directory); PREFECT_FLOWS_HEARTBEAT_FREQUENCY: heartbeats for the zombie-run "
    "automation. A deployment that sets `env` replaces this whole mapping: repeat these there."
)
_COMMAND_HELP = "What the container runs: Prefect executes the flow run (after its pull step)."


def prefect_default(kind: str) -> dict[str, Any]:
    """Prefect's default base job template for pool type `kind`, from the worker metadata
    Prefect ships (its server's offline copy; read without importing Prefect)."""
    (prefect,) = importlib.util.find_spec("prefect").submodule_search_locations
    shipped = Path(prefect, "server", "api", "collections_data", "views", "aggregate-worker-metadata.json")
    for collection in json.loads(shipped.read_text()).values():
        for worker in collection.values():
            if isinstance(worker, dict) and worker.get("type") == kind:
                return copy.deepcopy(worker["default_base_job_configuration"])
    raise KeyError(f"Prefect ships no base job template for pool type {kind!r}")


def template(kind: str) -> dict[str, Any]:
    """Prefect's default for `kind` with Bifrost's changes."""
    base = prefect_default(kind)
    variables = base["variables"]["properties"]
    variables["image"].update(default=IMAGE, description=_IMAGE_HELP)
    variables["env"].update(default=RUN_ENV, description=_ENV_HELP)
    variables["command"].update(default=COMMAND, description=_COMMAND_HELP)
    return _kubernetes(base) if kind == "kubernetes" else _ecs(base)


def _kubernetes(base: dict[str, Any]) -> dict[str, Any]:
    variables = base["variables"]["properties"]
    variables["namespace"]["default"] = "bifrost"
    variables["finished_job_ttl"]["default"] = 3600  # Prefect's default keeps finished jobs for ever
    variables["bifrost_env_secret"] = {
        "title": "Bifrost settings secret",
        "description": (
            "A Kubernetes Secret whose keys become the run's environment: BIFROST_DATABASE_URL, "
            "BIFROST_HOT_ROOT, BIFROST_ARCHIVE_ROOT, BIFROST_REDIS_URL, AWS_* for s3:// tiers."
        ),
        "type": "string",
        "default": "bifrost-env",
    }
    (container,) = base["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"]
    container["envFrom"] = [{"secretRef": {"name": "{{ bifrost_env_secret }}"}}]
    return base


def _ecs(base: dict[str, Any]) -> dict[str, Any]:
    variables = base["variables"]["properties"]
    variables["family"]["default"] = "bifrost"
    variables["bifrost_secrets"] = {
        "title": "Bifrost settings from AWS secrets",
        "description": (
            "The task definition's `secrets`: [{name, valueFrom}] with valueFrom a Secrets "
            "Manager or SSM parameter ARN, for BIFROST_DATABASE_URL, BIFROST_HOT_ROOT, "
            "BIFROST_ARCHIVE_ROOT, BIFROST_REDIS_URL (the execution role must read them)."
        ),
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "valueFrom": {"type": "string"}},
            "required": ["name", "valueFrom"],
        },
        "default": [],
    }
    (container,) = base["job_configuration"]["task_definition"]["containerDefinitions"]
    container["secrets"] = "{{ bifrost_secrets }}"
    return base


def text(kind: str) -> str:
    return json.dumps(template(kind), indent=2) + "\n"


def path(kind: str) -> Path:
    return HERE / f"{kind}.json"


if __name__ == "__main__":
    for kind in TYPES:
        path(kind).write_text(text(kind))
        print(f"wrote {path(kind)}")
