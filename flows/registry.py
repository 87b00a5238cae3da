"""The flow registry: every Bifrost flow declared once, with what runs and guards it.

One `FlowEntry` per flow drives `bifrost deploy` and `prefect.yaml` (deployments/flows.py),
the API's run routes (api/routers/flows.py, project flows only) and `bifrost flow`
(cli/flows.py). Adding a flow is its module under `flows/` plus one entry in `FLOWS`
(README, "Adding a flow").

This module imports neither Prefect nor the flows: the API and the CLI read it at start-up.
A flow's parameter model is derived from the flow's own signature (flat, typed parameters,
constraints as `Annotated[..., Field(...)]`) the first time it is asked for, which imports
the flow's module (and Prefect) then, once.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import typing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from bifrost_core.errors import NotFound
from bifrost_core.schemas import InputSchema
from bifrost_core.scope import SERVICE_USER  # scheduled runs act as this admin

ROOT = Path(__file__).resolve().parent.parent
# Pools (deployments/flows.py POOL_TYPES): CPU work on worker nodes, render chunks on GPU hosts.
WORK_POOL = "bifrost-cpu"
GPU_POOL = "bifrost-gpu"
# Scopes: a project flow works in one project (the API starts it under the project's path,
# the actor needs the entry's action there); a studio flow works across projects (upkeep):
# it takes no project, and only an admin may run it (`ADMIN_ONLY` as its action).
PROJECT = "project"
STUDIO = "studio"
ADMIN_ONLY = "admin"
# Parameters whose values come from the caller, not a form: who runs it (checked by the
# flow) and, for a project flow, the project it works in (the API's path).
CALLER_PARAMETERS = {PROJECT: ("actor", "project"), STUDIO: ("actor",)}


@dataclass(frozen=True)
class FlowEntry:
    """One flow. `name` is the flow's name, its deployment's name and the API's path segment.

    `schedules` and `triggers` are written as in `prefect.yaml` (e.g. `{"cron": "0 3 * * *",
    "timezone": "Europe/Paris", "parameters": {...}}`, UTC without a timezone); a scheduled
    run names SERVICE_USER as its `actor` in the schedule's parameters.
    """

    name: str
    entrypoint: str  # "path/to/module.py:function", relative to the repository root
    action: str  # the permission action that may start it and read its runs (ADMIN_ONLY: admins)
    description: str
    scope: str = PROJECT
    work_pool: str = WORK_POOL
    concurrency_limit: int | None = None
    tags: tuple[str, ...] = ("bifrost",)
    schedules: tuple[dict[str, Any], ...] = ()
    triggers: tuple[dict[str, Any], ...] = ()

    @property
    def deployment(self) -> str:
        """The deployment's full name, as `run_deployment` and `prefect deployment run` take it."""
        return f"{self.name}/{self.name}"

    @property
    def caller_parameters(self) -> tuple[str, ...]:
        return CALLER_PARAMETERS[self.scope]

    def load(self) -> Any:
        """The flow object (imports its module on first use)."""
        return _loaded(self.entrypoint)

    @cached_property
    def _fields(self) -> dict[str, Any]:
        flow = self.load()
        hints = typing.get_type_hints(flow.fn, include_extras=True)
        # Descriptions as the Prefect UI shows them (from the flow's docstring).
        described = flow.parameters.properties
        fields: dict[str, Any] = {}
        for name, parameter in inspect.signature(flow.fn).parameters.items():
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            description = described.get(name, {}).get("description")
            fields[name] = (Annotated[hints.get(name, Any), Field(description=description)], default)
        missing = [name for name in self.caller_parameters if name not in fields]
        if missing:
            raise TypeError(f"flow {self.name!r} must take the parameters {', '.join(missing)}")
        return fields

    @cached_property
    def _models(self) -> dict[tuple[str, bool], type[BaseModel]]:
        title = "".join(part.capitalize() for part in self.name.replace("-", "_").split("_"))
        body = {name: spec for name, spec in self._fields.items() if name not in self.caller_parameters}
        return {
            ("full", True): create_model(f"{title}Parameters", __base__=InputSchema, **self._fields),
            ("body", True): create_model(f"{title}RunCreate", __base__=InputSchema, **body),
            ("body", False): create_model(f"{title}Arguments", __base__=_Local, **body),
        }

    def parameters_model(self) -> type[BaseModel]:
        """Every parameter of the flow, unknown ones refused: what a run is started with."""
        return self._models["full", True]

    def body_model(self, *, remote: bool = True) -> type[BaseModel]:
        """The parameters a caller gives: all but actor (and project), unknown ones refused.
        `remote` (the API's request body) also refuses control characters in every text,
        as every API input does; a local run (the CLI) takes the operator's paths as they
        are, whatever their names hold (its output escapes them)."""
        return self._models["body", remote]


class _Local(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The flows. Concurrency: how many runs of each may go at once across the pool.
FLOWS: dict[str, FlowEntry] = {
    entry.name: entry
    for entry in (
        FlowEntry(
            name="ingest",
            entrypoint="flows/ingest.py:ingest",
            action="flows.ingest",
            description="Ingest a delivery folder into a project",
            concurrency_limit=4,
            tags=("bifrost", "ingest"),
        ),
        FlowEntry(
            name="publish",
            entrypoint="flows/publish.py:publish",
            action="flows.publish",
            description="Publish one version from an artist or a DCC",
            concurrency_limit=16,
            tags=("bifrost", "publish"),
        ),
        FlowEntry(
            name="verify",
            entrypoint="flows/maintenance.py:verify",
            action=ADMIN_ONLY,
            scope=STUDIO,
            description="Rehash stored blobs; the run fails if any is missing or corrupt",
            concurrency_limit=1,
            tags=("bifrost", "maintenance"),
            schedules=({"cron": "0 2 * * *", "parameters": {"actor": SERVICE_USER}},),
        ),
        FlowEntry(
            name="storage-gc",
            entrypoint="flows/maintenance.py:storage_gc",
            action=ADMIN_ONLY,
            scope=STUDIO,
            description="Find (or remove) blobs no version uses and copies left by crashed ingests",
            concurrency_limit=1,
            tags=("bifrost", "maintenance"),
            # A weekly report of what gc would remove; an admin runs it with dry_run=false.
            schedules=({"cron": "0 4 * * 0", "parameters": {"actor": SERVICE_USER, "dry_run": True}},),
        ),
        FlowEntry(
            name="replicate",
            entrypoint="flows/replicate.py:replicate",
            action=ADMIN_ONLY,
            scope=STUDIO,
            description="Copy new blobs to their tier's replicas, verified; fails if one is unreachable",
            concurrency_limit=1,
            tags=("bifrost", "maintenance"),
            # Every 5 minutes: with a run's own time, the content's RPO stays well under 15 minutes.
            schedules=({"interval": 300, "parameters": {"actor": SERVICE_USER}},),
        ),
        FlowEntry(
            name="database-backup",
            entrypoint="flows/backup.py:database_backup",
            action=ADMIN_ONLY,
            scope=STUDIO,
            description="Back the database up (pgBackRest base backup of PostgreSQL, or a SQLite copy)",
            concurrency_limit=1,
            tags=("bifrost", "maintenance", "backup"),
            # A full backup each Sunday and a differential the other nights; WAL is archived
            # continuously by PostgreSQL itself (infra/postgres), so these bound the replay.
            schedules=(
                {"cron": "0 1 * * 0", "parameters": {"actor": SERVICE_USER, "kind": "full"}},
                {"cron": "0 1 * * 1-6", "parameters": {"actor": SERVICE_USER, "kind": "diff"}},
            ),
        ),
        FlowEntry(
            name="render",
            entrypoint="flows/render.py:render",
            action="render.submit",
            description="Follow a render job: its progress, then its frames as a new version",
            tags=("bifrost", "render"),
        ),
        FlowEntry(
            name="render-queue",
            entrypoint="flows/render.py:render_queue",
            action="render.submit",
            description="Dispatch render chunks while GPU slots are free; retry crashed ones",
            # One pass at a time: a second would only race the first for the same chunks.
            concurrency_limit=1,
            tags=("bifrost", "render"),
            schedules=({"interval": 30, "parameters": {"actor": SERVICE_USER}},),
        ),
        FlowEntry(
            name="review-media",
            entrypoint="flows/review.py:review_media",
            action="versions.create",
            description="Make versions' review media: H.264 proxy with a burn-in, thumbnails, contact sheet",
            concurrency_limit=4,
            tags=("bifrost", "review"),
            # Every version a flow creates gets its review media: the event is Bifrost's
            # (tasks/review.py), so a studio can disable this trigger (Prefect UI,
            # Automations) or hang its own flows on the same event.
            triggers=(
                {
                    "type": "event",
                    "name": "review media of each new version",
                    "enabled": True,
                    "match": {"prefect.resource.id": "bifrost.version.*"},
                    "expect": ["bifrost.version.created"],
                    "parameters": {
                        "actor": "{{ event.resource['bifrost.actor'] }}",
                        "project": "{{ event.resource['bifrost.project'] }}",
                        "versions": ["{{ event.payload.version_id }}"],
                    },
                },
            ),
        ),
        FlowEntry(
            name="render-chunk",
            entrypoint="flows/render.py:render_chunk",
            action="render.submit",
            description="Render one chunk of a render job on a GPU host",
            work_pool=GPU_POOL,
            tags=("bifrost", "render"),
        ),
    )
}


def entry(name: str) -> FlowEntry:
    found = FLOWS.get(name)
    if found is None:
        raise NotFound(f"no flow named {name!r} (known: {', '.join(sorted(FLOWS))})")
    return found


def project_flows() -> dict[str, FlowEntry]:
    """The flows that work in one project: those the API starts under a project's path."""
    return {name: item for name, item in FLOWS.items() if item.scope == PROJECT}


def project_entry(name: str) -> FlowEntry:
    """`entry`, for a route under a project: a studio-wide flow has none (404)."""
    found = entry(name)
    if found.scope != PROJECT:
        known = ", ".join(sorted(project_flows()))
        raise NotFound(f"flow {name!r} is studio-wide, not started in a project (project flows: {known})")
    return found


def _loaded(entrypoint: str) -> Any:
    """Import `path.py:attribute` under ROOT: by module name when it is importable (so the
    flow is the same object whoever imports it), else from its file (e.g. a flow under tests/)."""
    if entrypoint in _flows:
        return _flows[entrypoint]
    path, _, attribute = entrypoint.partition(":")
    module_name = path.removesuffix(".py").replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module exists but imports something missing
        spec = importlib.util.spec_from_file_location(module_name, ROOT / path)
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    _flows[entrypoint] = flow = getattr(module, attribute)
    return flow


_flows: dict[str, Any] = {}


def project_tag(code: str) -> str:
    """The tag every run of a project carries, so the Prefect UI filters runs by project."""
    return f"project:{code}"
