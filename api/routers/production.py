"""Projects, episodes, sequences and shots."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api import cached
from api.deps import CtxDep
from api.params import (
    After,
    CodeFilter,
    Id,
    Limit,
    OptionalId,
    Page,
    Status,
    UpdatedSince,
    project_rows,
    rows_page,
)
from bifrost_core.projects import service
from bifrost_core.projects.repository import (
    EpisodeRepository,
    ProjectRepository,
    SequenceRepository,
    ShotRepository,
)
from bifrost_core.projects.schemas import (
    EpisodeCreate,
    EpisodeRead,
    EpisodeUpdate,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    SequenceCreate,
    SequenceRead,
    SequenceUpdate,
    ShotCreate,
    ShotRead,
    ShotUpdate,
)

router = APIRouter()


@router.get("/projects", response_model=Page[ProjectRead], tags=["projects"])
def list_projects(
    ctx: CtxDep, code: CodeFilter = None, status: Status = None, after: After = None, limit: Limit = 100
) -> Response:
    repository = ProjectRepository(ctx.session, ctx.actor)
    return ctx.respond(
        rows_page(
            repository,
            ProjectRead,
            filters={"status": status},
            code=code,
            after=after,
            limit=limit,
        )
    )


@router.post("/projects", response_model=ProjectRead, status_code=201, tags=["projects"])
def create_project(ctx: CtxDep, data: ProjectCreate) -> Response:
    project = service.create_project(
        ctx.session,
        actor=ctx.actor,
        data=data,
        allowed_roots=ctx.state.settings.allowed_storage_roots,
        replica_roots=ctx.state.settings.replica_roots,
    )
    return ctx.done(ProjectRead.model_validate(project), 201)


@router.get("/projects/{project_id}", response_model=ProjectRead, tags=["projects"])
def get_project(ctx: CtxDep, project_id: Id) -> Response:
    return cached.read(
        ctx,
        "project",
        project_id,
        action="production.read",
        schema=ProjectRead,
        load=lambda: ProjectRepository(ctx.session, ctx.actor).get(project_id),
    )


@router.patch("/projects/{project_id}", response_model=ProjectRead, tags=["projects"])
def update_project(ctx: CtxDep, project_id: Id, data: ProjectUpdate) -> Response:
    project = service.update_project(
        ctx.session,
        actor=ctx.actor,
        project_id=project_id,
        data=data,
        allowed_roots=ctx.state.settings.allowed_storage_roots,
        replica_roots=ctx.state.settings.replica_roots,
    )
    return ctx.done(ProjectRead.model_validate(project))


# Episodes


@router.get("/projects/{project_id}/episodes", response_model=Page[EpisodeRead], tags=["episodes"])
def list_episodes(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    return project_rows(ctx, project_id, EpisodeRepository, EpisodeRead, after=after, limit=limit)


@router.post(
    "/projects/{project_id}/episodes", response_model=EpisodeRead, status_code=201, tags=["episodes"]
)
def create_episode(ctx: CtxDep, project_id: Id, data: EpisodeCreate) -> Response:
    episode = service.create_episode(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(EpisodeRead.model_validate(episode), 201)


@router.get("/episodes/{episode_id}", response_model=EpisodeRead, tags=["episodes"])
def get_episode(ctx: CtxDep, episode_id: Id) -> Response:
    episode = EpisodeRepository(ctx.session, ctx.actor).get(episode_id)
    ctx.require("production.read", episode.project_id)
    return ctx.respond(EpisodeRead.model_validate(episode))


@router.patch("/episodes/{episode_id}", response_model=EpisodeRead, tags=["episodes"])
def update_episode(ctx: CtxDep, episode_id: Id, data: EpisodeUpdate) -> Response:
    episode = service.update_episode(ctx.session, actor=ctx.actor, episode_id=episode_id, data=data)
    return ctx.done(EpisodeRead.model_validate(episode))


# Sequences


@router.get("/projects/{project_id}/sequences", response_model=Page[SequenceRead], tags=["sequences"])
def list_sequences(
    ctx: CtxDep,
    project_id: Id,
    code: CodeFilter = None,
    episode_id: OptionalId = None,
    updated_since: UpdatedSince = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    filters = {"episode_id": episode_id}
    return project_rows(
        ctx,
        project_id,
        SequenceRepository,
        SequenceRead,
        filters=filters,
        code=code,
        updated_since=updated_since,
        after=after,
        limit=limit,
    )


@router.post(
    "/projects/{project_id}/sequences", response_model=SequenceRead, status_code=201, tags=["sequences"]
)
def create_sequence(ctx: CtxDep, project_id: Id, data: SequenceCreate) -> Response:
    sequence = service.create_sequence(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(SequenceRead.model_validate(sequence), 201)


@router.get("/sequences/{sequence_id}", response_model=SequenceRead, tags=["sequences"])
def get_sequence(ctx: CtxDep, sequence_id: Id) -> Response:
    return cached.read(
        ctx,
        "sequence",
        sequence_id,
        action="production.read",
        schema=SequenceRead,
        load=lambda: SequenceRepository(ctx.session, ctx.actor).get(sequence_id),
    )


@router.patch("/sequences/{sequence_id}", response_model=SequenceRead, tags=["sequences"])
def update_sequence(ctx: CtxDep, sequence_id: Id, data: SequenceUpdate) -> Response:
    sequence = service.update_sequence(ctx.session, actor=ctx.actor, sequence_id=sequence_id, data=data)
    return ctx.done(SequenceRead.model_validate(sequence))


# Shots


@router.get("/projects/{project_id}/shots", response_model=Page[ShotRead], tags=["shots"])
def list_shots(
    ctx: CtxDep,
    project_id: Id,
    code: CodeFilter = None,
    sequence_id: OptionalId = None,
    status: Status = None,
    updated_since: UpdatedSince = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    filters = {"sequence_id": sequence_id, "status": status}
    return project_rows(
        ctx,
        project_id,
        ShotRepository,
        ShotRead,
        filters=filters,
        code=code,
        updated_since=updated_since,
        after=after,
        limit=limit,
    )


@router.post("/sequences/{sequence_id}/shots", response_model=ShotRead, status_code=201, tags=["shots"])
def create_shot(ctx: CtxDep, sequence_id: Id, data: ShotCreate) -> Response:
    shot = service.create_shot(ctx.session, actor=ctx.actor, sequence_id=sequence_id, data=data)
    return ctx.done(ShotRead.model_validate(shot), 201)


@router.get("/shots/{shot_id}", response_model=ShotRead, tags=["shots"])
def get_shot(ctx: CtxDep, shot_id: Id) -> Response:
    return cached.read(
        ctx,
        "shot",
        shot_id,
        action="production.read",
        schema=ShotRead,
        load=lambda: ShotRepository(ctx.session, ctx.actor).get(shot_id),
    )


@router.patch("/shots/{shot_id}", response_model=ShotRead, tags=["shots"])
def update_shot(ctx: CtxDep, shot_id: Id, data: ShotUpdate) -> Response:
    shot = service.update_shot(ctx.session, actor=ctx.actor, shot_id=shot_id, data=data)
    return ctx.done(ShotRead.model_validate(shot))
