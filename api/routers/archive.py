"""Storage tiering: a project's archive policy, what it would move, restores, shots marked
final. Moves themselves run as the `archive` flow (`POST /projects/{id}/flows/archive/runs`,
scheduled nightly for every project as `archive-all`); restores run here, or as the
`archive-restore` flow for large ones.

A restore from a cold tier (BIFROST_TIER_RESTORE_DELAYS) answers 202 with
`{"status": "restoring", "ready_in": seconds, ...}` until it is ready; a version whose only
copy is damaged answers 409 (`damaged_content`) naming the blobs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field, model_validator

from api.deps import CtxDep
from api.params import Id
from bifrost_core.errors import NotFound
from bifrost_core.lifecycle import moves, policies, restores
from bifrost_core.lifecycle.schemas import PolicyRead, PolicyRules
from bifrost_core.projects.models import Project, Shot
from bifrost_core.schemas import InputSchema

router = APIRouter(tags=["archive"])


class RestoreCreate(InputSchema):
    """What to restore: exactly one of versions, a shot (every version of it) or a playlist."""

    version_ids: list[int] | None = Field(default=None, min_length=1, max_length=10000)
    shot_id: int | None = Field(default=None, ge=1)
    playlist_id: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> RestoreCreate:
        if sum(value is not None for value in (self.version_ids, self.shot_id, self.playlist_id)) != 1:
            raise ValueError("give exactly one of version_ids, shot_id, playlist_id")
        return self


@router.get("/projects/{project_id}/archive-policy", response_model=PolicyRead)
def get_policy(ctx: CtxDep, project_id: Id) -> Response:
    """The project's archive policy (no rule set: it archives nothing)."""
    ctx.see_project(project_id)
    return ctx.respond(policies.get_policy(ctx.session, actor=ctx.actor, project_id=project_id))


@router.put("/projects/{project_id}/archive-policy", response_model=PolicyRead)
def set_policy(ctx: CtxDep, project_id: Id, rules: PolicyRules) -> Response:
    """Replace the project's archive policy; its tier must be one the project has."""
    read = policies.set_policy(
        ctx.session, ctx.state.settings, actor=ctx.actor, project_id=project_id, rules=rules
    )
    return ctx.done(read)


@router.get("/projects/{project_id}/archive/plan")
def archive_plan(
    ctx: CtxDep,
    project_id: Id,
    force: bool = Query(default=False, description="Plan even when the policy selects every hot version"),
) -> Response:
    """What the project's policy would move now (a dry run): versions, and bytes per tier.
    409 when it would archive every hot version and `force` is not given."""
    ctx.project(project_id, "project.update")
    code = _release_session(ctx, ctx.session.get(Project, project_id).code)
    report = moves.archive_project(
        ctx.state.database, ctx.state.settings, actor=ctx.actor, project=code, dry_run=True, force=force
    )
    return JSONResponse(asdict(report))


@router.post("/projects/{project_id}/archive/restore")
def restore(ctx: CtxDep, project_id: Id, data: RestoreCreate) -> Response:
    """Bring versions of the project back to the hot tier, verified: 200 with each version's
    outcome, or 202 while a cold tier prepares them (`ready_in` seconds)."""
    ctx.project(project_id, "versions.create")
    code = ctx.session.get(Project, project_id).code
    database, actor = ctx.state.database, ctx.actor
    if data.shot_id is not None:
        shot = ctx.session.get(Shot, data.shot_id)
        if shot is None or shot.project_id != project_id:
            raise NotFound(f"shot {data.shot_id} not found in project {code}")
    _release_session(ctx, None)
    if data.shot_id is not None:
        ids = restores.versions_of_shot_id(database, data.shot_id)
    elif data.playlist_id is not None:
        ids = restores.versions_of_playlist(database, actor, data.playlist_id, project_id=project_id)
    else:
        ids = list(data.version_ids or [])
    report = restores.restore_versions(
        database, ctx.state.settings, actor=actor, version_ids=ids, project=code
    )
    body: dict[str, Any] = {"status": "restored", "outcomes": [asdict(o) for o in report.outcomes]}
    if report.pending:
        body.update(
            status="restoring",
            ready_in=max(o.ready_in or 0 for o in report.pending),
            message=restores.pending_message(report),
        )
        return JSONResponse(body, status_code=202)
    return JSONResponse(body)


@router.put("/shots/{shot_id}/final", status_code=204)
def mark_final(ctx: CtxDep, shot_id: Id) -> Response:
    """Mark a shot final (delivered): the policy's `final_shot_after_days` counts from now."""
    policies.mark_final(ctx.session, actor=ctx.actor, shot=_shot(ctx, shot_id), final=True)
    return ctx.done(None, 204)


@router.delete("/shots/{shot_id}/final", status_code=204)
def unmark_final(ctx: CtxDep, shot_id: Id) -> Response:
    """The shot is no longer final."""
    policies.mark_final(ctx.session, actor=ctx.actor, shot=_shot(ctx, shot_id), final=False)
    return ctx.done(None, 204)


def _release_session(ctx: CtxDep, value: Any) -> Any:
    """End the request's read transaction before a move or restore, which commit in their own
    (on SQLite every transaction holds the database's write lock); `value` passes through."""
    ctx.session.rollback()
    return value


def _shot(ctx: CtxDep, shot_id: int) -> Shot:
    shot = ctx.session.get(Shot, shot_id)
    if shot is None or not ctx.actor.can_see(shot.project_id):
        raise NotFound(f"shot {shot_id} not found")
    return shot
