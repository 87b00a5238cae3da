"""Upkeep of stored content as tasks: one task per whole pass (a pass is one database
query and a walk of each tier, coarse as every Bifrost task)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bifrost_core.ingest import upkeep
from tasks.common import context


@task(name="verify-blobs", cache_policy=NO_CACHE)
def verify_blobs(sample: int | None, tier: str | None) -> upkeep.VerifyReport:
    settings, database = context()
    return upkeep.verify(database, settings, sample=sample, tier=tier)


@task(name="collect-garbage", cache_policy=NO_CACHE)
def collect_garbage(grace_hours: float, dry_run: bool) -> upkeep.GcReport:
    settings, database = context()
    return upkeep.gc(database, settings, grace_hours=grace_hours, dry_run=dry_run)
