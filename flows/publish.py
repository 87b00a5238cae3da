"""The publish flow: one version from an artist or a DCC tool, through the ingest machinery."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from prefect.states import State
from pydantic import Field

from bifrost_core.errors import BifrostError
from bifrost_core.ingest import progress
from bifrost_core.ingest.schemas import IngestSummary, PublishRequest
from bifrost_core.ingest.summaries import merge, summary_of
from bifrost_core.jsonbounds import JsonObject
from bifrost_core.schemas import Frame
from flows.parameters import Actor, EntityCode, Location, ProjectCode, Tier
from flows.reporting import IngestReport, Progress, failed, publish_artifacts
from flows.runs import begin, parameters
from tasks.ingest import plan_publish, record_summary, store_and_register


def run_name() -> str:
    """`publish DEMO sq010/sh010 anim` or `publish DEMO chair look`."""
    given = parameters()
    target = given.get("asset") or f"{given.get('sequence')}/{given.get('shot')}"
    return f"publish {given['project']} {target} {given['task']}"


@flow(name="publish", flow_run_name=run_name)
def publish(
    actor: Actor,
    project: ProjectCode,
    task: EntityCode,
    files: Annotated[list[Location], Field(min_length=1, max_length=100_000)],
    sequence: EntityCode | None = None,
    shot: EntityCode | None = None,
    asset: EntityCode | None = None,
    variant: EntityCode = "main",
    comment: Annotated[str, Field(max_length=10_000)] = "",
    frame_in: Frame | None = None,
    frame_out: Frame | None = None,
    meta: JsonObject | None = None,
    tier: Tier = "hot",
    dry_run: bool = False,
) -> IngestSummary | State:
    """Publish one version of a shot's or an asset's task from files.

    Args:
        actor: Bifrost username of who publishes (your own): the version's author
        project: Project code, e.g. DEMO
        task: Task name, created on the shot or asset if missing
        files: Files or image-sequence frames to publish, as the worker sees them
        sequence: Sequence code (for a shot)
        shot: Shot code
        asset: Asset code (instead of a shot)
        variant: Variant of the task's output
        comment: The version's comment
        frame_in: Expected first frame (checked)
        frame_out: Expected last frame (checked)
        meta: Free-form JSON stored on the version
        tier: Storage tier to store into
        dry_run: Only plan: report what would be created
    """
    checked = begin("publish", actor, project)
    request = PublishRequest(
        project=project,
        sequence=sequence,
        shot=shot,
        asset=asset,
        task=task,
        variant=variant,
        comment=comment,
        files=files,
        frame_in=frame_in,
        frame_out=frame_out,
        meta=meta or {},
        tier=tier,
        dry_run=dry_run,
    )
    plan = plan_publish(request)
    summary = summary_of(plan, dry_run=dry_run)
    report = IngestReport("publish", summary)
    if not dry_run:
        if plan.pending:
            with Progress("publish", project):
                progress.total(len(plan.pending[0].files), plan.pending[0].size)
                try:
                    result = store_and_register(
                        plan.project,
                        plan.tier,
                        plan.source,
                        plan.pending,
                        checked,
                        label="1-of-1",
                        comment=comment,
                        meta=request.meta,
                    )
                except BifrostError as exc:
                    return failed("publish", report, exc)
            merge(summary, result)
        if summary.changed_anything:
            record_summary(summary, "publish", checked)
    publish_artifacts("publish", report)
    return summary
