"""Prefect tasks of ingest and publish: one per plan, per batch of files, per run summary.

Thin wrappers over `bifrost_core.ingest` (planning, batches, summaries). Inputs and outputs
are pydantic models of plain data; caching by inputs is off (hashing thousands of file
entries per call would cost more than it saves, and a rerun finds its work done by itself).
"""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from bifrost_core.ingest import batches, planning, summaries
from bifrost_core.ingest.schemas import IngestPlan, IngestSummary, PlannedVersion, PublishRequest
from bifrost_core.scope import Actor
from tasks.common import context
from tasks.review import announce_versions


@task(name="plan-ingest", cache_policy=NO_CACHE)
def plan_ingest(project: str, source: str, tier: str) -> IngestPlan:
    settings, database = context()
    return planning.plan_ingest(database, settings, project=project, source=source, tier=tier)


@task(name="plan-publish", cache_policy=NO_CACHE)
def plan_publish(request: PublishRequest) -> IngestPlan:
    settings, database = context()
    return planning.plan_publish(database, settings, request=request)


def retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect's retry condition for a batch: see `batches.is_transient`."""
    return batches.is_transient(state.result(raise_on_failure=False))


@task(
    name="store-and-register",
    cache_policy=NO_CACHE,
    task_run_name="store-and-register-{label}",
    # An object store's hiccup or a dropped database connection should not fail a delivery
    # of thousands of files; a full disk or bad input fails at once.
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_if_transient,
)
def store_and_register(
    project: str,
    tier: str,
    source: str,
    versions: list[PlannedVersion],
    actor: Actor,
    label: str,
    comment: str = "",
    meta: dict | None = None,
) -> IngestSummary:
    """Store one batch of files (durable, one sync per chunk) and register its versions;
    announce each version created (the event the review-media flow is triggered by)."""
    settings, database = context()
    summary = batches.run_batch(
        database,
        settings,
        project=project,
        tier=tier,
        source=source,
        versions=versions,
        actor=actor,
        comment=comment,
        meta=meta,
    )
    announce_versions(project, actor, summary.created)
    return summary


@task(name="record-summary", cache_policy=NO_CACHE)
def record_summary(summary: IngestSummary, kind: str, actor: Actor) -> None:
    """The run's event: its counts and the versions it created."""
    _, database = context()
    summaries.record_summary(database, summary=summary, kind=kind, actor=actor)
