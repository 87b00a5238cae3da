"""The publish flow: one version from an artist or a DCC tool, through the ingest machinery."""

from __future__ import annotations

from prefect import flow

from bifrost_core.ingest import progress
from bifrost_core.ingest.schemas import IngestSummary, PublishRequest
from bifrost_core.ingest.summaries import merge, summary_of
from flows.reporting import publish_artifacts
from tasks.ingest import check_actor, plan_publish, record_ingest, store_and_register


@flow(name="publish")
def publish(request: PublishRequest) -> IngestSummary:
    actor = check_actor(request.actor, request.project, "flows.publish")
    plan = plan_publish(request)
    summary = summary_of(plan, dry_run=request.dry_run)
    if not request.dry_run:
        if plan.pending:
            progress.total(len(plan.pending[0].files), plan.pending[0].size)
            result = store_and_register(
                plan.project,
                plan.tier,
                plan.source,
                plan.pending,
                actor,
                label="1-of-1",
                comment=request.comment,
                meta=request.meta,
            )
            merge(summary, result)
        if summary.created or summary.problems or summary.held_back or summary.blobs_repaired:
            # A rerun that finds everything done leaves no trace but its Prefect run.
            record_ingest(summary, "publish", actor)
    publish_artifacts("publish", summary)
    return summary
