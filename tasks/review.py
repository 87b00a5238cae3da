"""Review media as Prefect tasks: one task per version (its frames are one batch of work),
and the events that start them."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from bifrost_core.errors import BifrostError
from bifrost_core.ingest.schemas import CreatedVersion
from bifrost_core.lifecycle import restores
from bifrost_core.media import service
from bifrost_core.scope import Actor
from tasks.common import context

# What Bifrost tells Prefect when a flow created a version; the review-media deployment's
# trigger listens for it (flows/registry.py), and so can any flow a studio adds.
VERSION_CREATED = "bifrost.version.created"


class MediaOutcome(BaseModel):
    """One version's review media, made or not (`error`: why not, as recorded on it)."""

    version_id: int
    result: service.MediaResult | None = None
    error: str | None = None
    error_code: str | None = None  # the BifrostError's `code`: not found, invalid input, ...


@task(name="make-review-media", cache_policy=NO_CACHE, task_run_name="review-media-v{version_id}")
def make_review_media(
    version_id: int, actor: Actor, project: str, height: int | None, force: bool
) -> MediaOutcome:
    """Probe the version's frames or movie, make its proxy, thumbnails and contact sheet,
    store and record them. A version that cannot have them is an outcome, not a failed
    task: the flow goes on with the other versions."""
    settings, database = context()
    try:
        # An archived version's frames come back to hot first (a cold tier: "restoring, ready in N").
        restores.ensure_hot(database, settings, actor=actor, version_id=version_id)
        result = service.make(
            database,
            settings,
            actor=actor,
            version_id=version_id,
            height=height,
            force=force,
            project=project,
        )
    except BifrostError as exc:
        return MediaOutcome(version_id=version_id, error=str(exc), error_code=exc.code)
    return MediaOutcome(version_id=version_id, result=result)


def announce_versions(project: str, actor: Actor, created: list[CreatedVersion]) -> None:
    """One `bifrost.version.created` Prefect event per version created (after its commit):
    the resource is the version, labelled with its project, target, number and the user who
    made it, whom a triggered run acts as."""
    from prefect.events import emit_event

    for version in created:
        emit_event(
            VERSION_CREATED,
            resource={
                "prefect.resource.id": f"bifrost.version.{version.version_id}",
                "prefect.resource.name": f"{project} {version.target} v{version.number:03d}",
                "bifrost.project": project,
                "bifrost.actor": actor.username,
            },
            payload={"version_id": version.version_id, "number": version.number, "target": version.target},
        )
