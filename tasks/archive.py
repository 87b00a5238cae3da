"""Archive moves and restores as Prefect tasks: one task per project's move, one per
restore of a set of versions (each is a batch of blobs, copied on the store's threads)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bifrost_core.lifecycle import moves, restores
from bifrost_core.scope import Actor
from tasks.common import context


@task(name="archive-project", cache_policy=NO_CACHE, task_run_name="archive-{project}")
def archive_project(actor: Actor, project: str, dry_run: bool, force: bool) -> moves.ArchiveReport:
    settings, database = context()
    return moves.archive_project(
        database, settings, actor=actor, project=project, dry_run=dry_run, force=force
    )


@task(name="archive-every-project", cache_policy=NO_CACHE)
def archive_every_project(actor: Actor, dry_run: bool) -> list[moves.ArchiveReport]:
    settings, database = context()
    return moves.archive_all(database, settings, actor=actor, dry_run=dry_run)


@task(name="restore-versions", cache_policy=NO_CACHE)
def restore_versions(actor: Actor, project: str, versions: list[int]) -> restores.RestoreReport:
    settings, database = context()
    return restores.restore_versions(database, settings, actor=actor, version_ids=versions, project=project)
