"""The ingest flow: scan a delivery → plan → store in coarse batches → register → report.

Two batches run at a time (each copies with several threads and ends each chunk with one
sync): while one registers its versions in the database, the other copies, and memory
stays bounded. A version is registered once its batch is durable.
"""

from __future__ import annotations

import gc
from pathlib import PurePath
from typing import Annotated

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from bifrost_core.errors import BifrostError, InvalidInput
from bifrost_core.ingest import progress
from bifrost_core.ingest.batches import batches
from bifrost_core.ingest.planning import nothing_matched
from bifrost_core.ingest.schemas import IngestSummary
from bifrost_core.ingest.summaries import merge, summary_of
from flows.parameters import Actor, Location, ProjectCode, Tier
from flows.reporting import IngestReport, Progress, failed, publish_artifacts
from flows.runs import begin, parameters
from tasks.ingest import plan_ingest, record_summary, store_and_register


def run_name() -> str:
    """`ingest DEMO sq010-delivery`: the project and the delivery folder's name."""
    given = parameters()
    return f"ingest {given['project']} {PurePath(given['source']).name}"


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=2), flow_run_name=run_name)
def ingest(
    actor: Actor,
    project: ProjectCode,
    source: Location,
    tier: Tier = "hot",
    dry_run: bool = False,
    batch_files: Annotated[int, Field(ge=1, le=100_000)] = 2000,
    batch_megabytes: Annotated[int, Field(ge=1, le=10_000_000)] = 4096,
) -> IngestSummary | State:
    """Ingest a delivery folder: match its files to shots/assets and tasks, store them, register versions.

    Args:
        actor: Bifrost username of who starts the run (your own): the author of what it writes
        project: Project code, e.g. DEMO
        source: Folder of the delivery, as the worker sees it
        tier: Storage tier to store into
        dry_run: Only plan: report what would be created
        batch_files: Files per batch task
        batch_megabytes: Megabytes per batch task
    """
    # What is alive by now (modules of Prefect, SQLAlchemy, pydantic: ~200,000 objects) lives
    # as long as the process. Frozen, it is not rescanned by each older-generation collection
    # that planning and registering thousands of files trigger: on 10,000 files, collection
    # time falls from ~0.19 s to ~0.06 s and a rerun's planning from ~0.26 s to ~0.20 s.
    # Unfrozen at the end, so a process that runs many flows still collects what dies later.
    gc.freeze()
    try:
        return _ingest(actor, project, source, tier, dry_run, batch_files, batch_megabytes)
    finally:
        gc.unfreeze()


def _ingest(
    username: str, project: str, source: str, tier: str, dry_run: bool, batch_files: int, batch_megabytes: int
) -> IngestSummary | State:
    actor = begin("ingest", username, project)
    plan = plan_ingest(project, source, tier)
    summary = summary_of(plan, dry_run=dry_run)
    report = IngestReport("ingest", summary)
    nothing = nothing_matched(plan)
    if nothing is not None:
        # A delivery laid out against the naming rules, or sent to the wrong project: the
        # run fails (after its summary, which lists what did not match), dry run or not.
        return failed("ingest", report, InvalidInput(nothing))
    failure: BifrostError | None = None
    if not dry_run:
        pending = plan.pending
        groups = batches(pending, max_files=batch_files, max_bytes=batch_megabytes << 20)
        with Progress("ingest", project):
            progress.total(sum(len(v.files) for v in pending), sum(v.size for v in pending))
            futures = [
                # quote: Prefect would otherwise walk every file of the batch looking for futures.
                store_and_register.submit(
                    plan.project,
                    plan.tier,
                    plan.source,
                    quote(group),
                    actor,
                    label=f"{number}-of-{len(groups)}",
                )
                for number, group in enumerate(groups, 1)
            ]
            for future in futures:
                try:
                    merge(summary, future.result())
                except BifrostError as exc:  # the other batches still finish and count
                    failure = failure or exc
        if summary.changed_anything:
            record_summary(quote(summary), "ingest", actor)
    if failure is not None:
        return failed("ingest", report, failure)
    publish_artifacts("ingest", report)
    return summary
