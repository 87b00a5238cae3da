"""The summary of an ingest or publish run: what the plan found, the batches' outcomes
added up, and the run's event."""

from __future__ import annotations

from bifrost_core.codes import project_by_code
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import service
from bifrost_core.ingest.schemas import IngestPlan, IngestSummary
from bifrost_core.scope import Actor


def summary_of(plan: IngestPlan, *, dry_run: bool) -> IngestSummary:
    """The summary of a run before any batch: what the plan found."""
    return IngestSummary(
        project=plan.project,
        source=plan.source,
        tier=plan.tier,
        dry_run=dry_run,
        planned_new=plan.count("new"),
        planned_changed=plan.count("changed"),
        # A known version with missing blobs is counted by the batch that repairs it.
        known=plan.count("known") - (0 if dry_run else sum(1 for v in plan.versions if v.missing)),
        unmatched=plan.unmatched,
        problems=list(plan.problems),
        held_back=list(plan.held_back),
        files=sum(len(version.files) for version in plan.versions),
        bytes=sum(version.size for version in plan.versions),
        plan=plan if dry_run else None,
    )


def merge(summary: IngestSummary, batch: IngestSummary) -> None:
    """Add one batch's outcome to the run's summary."""
    summary.known += batch.known
    summary.created.extend(batch.created)
    summary.problems.extend(batch.problems)
    summary.held_back.extend(batch.held_back)
    summary.files_copied += batch.files_copied
    summary.bytes_copied += batch.bytes_copied
    summary.blobs_repaired += batch.blobs_repaired


def record_summary(database: Database, *, summary: IngestSummary, kind: str, actor: Actor) -> None:
    """The run's event (counts and created version ids), in its own transaction."""
    with UnitOfWork(database) as uow:
        project_id = project_by_code(uow.session, actor, summary.project).id
        service.record_summary(
            uow.session,
            actor=actor,
            project_id=project_id,
            summary={
                "kind": kind,
                "source": service.printable(summary.source),
                "tier": summary.tier,
                "created": [version.version_id for version in summary.created],
                "known": summary.known,
                "unmatched": len(summary.unmatched),
                "problems": len(summary.problems),
                "held_back": [held.target for held in summary.held_back],
                "files_copied": summary.files_copied,
                "bytes_copied": summary.bytes_copied,
                "blobs_repaired": summary.blobs_repaired,
            },
        )
        uow.commit()
