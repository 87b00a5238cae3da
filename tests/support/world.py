"""The production the API tests run against: two projects, users of every role, tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate, CastingCreate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import EpisodeCreate, ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.render import service as render
from bifrost_core.render.models import RenderChunk
from bifrost_core.render.schemas import RenderJobCreate
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.schemas import NoteCreate, PlaylistCreate
from bifrost_core.runs import service as runs
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as users
from bifrost_core.users.schemas import MembershipCreate, TokenCreate, UserCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate

ROLES = ("coordinator", "supervisor", "artist", "client", "service")


@dataclass
class ProjectIds:
    project_id: int
    episode_id: int
    sequence_id: int
    shot_id: int
    asset_id: int
    asset_type_id: int
    casting_id: int
    task_type_id: int
    task_id: int
    version_id: int
    representation_id: int
    note_id: int
    membership_id: int
    run_id: str
    render_id: int
    playlist_id: int


@dataclass
class World:
    a: ProjectIds
    b: ProjectIds
    # role -> token in project A; "admin" is studio-wide; "b_coordinator" only sees B.
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _project(session, code: str, blob_hash: str) -> ProjectIds:
    project = projects.create_project(session, actor=SYSTEM, data=ProjectCreate(code=code, name=code))
    episode = projects.create_episode(
        session, actor=SYSTEM, project_id=project.id, data=EpisodeCreate(code="ep1")
    )
    sequence = projects.create_sequence(
        session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010", episode_id=episode.id)
    )
    shot = projects.create_shot(session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010"))
    asset = assets.create_asset(
        session, actor=SYSTEM, project_id=project.id, data=AssetCreate(code="hero", asset_type="char")
    )
    casting = assets.cast(session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=asset.id))
    task = tasks.create_task(session, actor=SYSTEM, data=TaskCreate(task_type="anim", shot_id=shot.id))
    version = versions.create_version(
        session,
        actor=SYSTEM,
        data=VersionCreate(
            task_id=task.id,
            representations=[
                RepresentationIn(
                    name="movie", kind="movie", files=[FileIn(name="a.mov", blob_hash=blob_hash)]
                )
            ],
        ),
    )
    # The new version moved the task to review (statuses follow new versions); the world's task
    # starts where a project without that rule leaves it, so the role tests can move it freely.
    session.execute(update(Task).where(Task.id == task.id).values(status="wtg"))
    session.refresh(task)
    run = runs.record_run(
        session, actor=SYSTEM, project_id=project.id, flow="ingest", action="flows.ingest", parameters={}
    )
    runs.started(session, actor=SYSTEM, run=run, run_id=str(uuid.uuid4()))
    note = reviews.create_note(
        session, actor=SYSTEM, target="version", target_id=version.id, data=NoteCreate(body="nice")
    )
    playlist = reviews.create_playlist(
        session,
        actor=SYSTEM,
        project_id=project.id,
        data=PlaylistCreate(name="dailies", version_ids=[version.id]),
    )
    job = render.submit(
        session,
        actor=SYSTEM,
        project_id=project.id,
        data=RenderJobCreate(
            task_id=task.id, command=["render", "{first}", "{last}"], frames="1-4", chunk_size=2
        ),
        gpu_hosts={"world-host": 1},
        render_root=Path("/render"),
    )
    # One chunk failed while the other runs: the job can be both retried and cancelled.
    session.execute(
        update(RenderChunk)
        .where(RenderChunk.job_id == job.id, RenderChunk.index == 0)
        .values(state="failed", attempts=1)
    )
    job.state = "running"
    return ProjectIds(
        project_id=project.id,
        episode_id=episode.id,
        sequence_id=sequence.id,
        shot_id=shot.id,
        asset_id=asset.id,
        asset_type_id=asset.asset_type_id,
        casting_id=casting.id,
        task_type_id=task.task_type_id,
        task_id=task.id,
        version_id=version.id,
        representation_id=version.representations[0].id,
        note_id=note.id,
        membership_id=0,
        run_id=run.run_id,
        render_id=job.id,
        playlist_id=playlist.id,
    )


def build_world(database: Database) -> World:
    with UnitOfWork(database) as uow:
        session = uow.session
        blob_hash = "ab" * 32
        record_blobs(session, [(blob_hash, 3, "file:///x")], "hot")
        world = World(a=_project(session, "PRJA", blob_hash), b=_project(session, "PRJB", blob_hash))
        people = [("admin", None, None), ("b_coordinator", world.b.project_id, "coordinator")]
        people += [(role, world.a.project_id, role) for role in ROLES]
        for name, project_id, role in people:
            user = users.create_user(
                session, actor=SYSTEM, data=UserCreate(username=name, is_admin=name == "admin")
            )
            if project_id is not None:
                membership = users.set_membership(
                    session,
                    actor=SYSTEM,
                    project_id=project_id,
                    data=MembershipCreate(user_id=user.id, role=role),
                )
                if name == "client":
                    world.a.membership_id = membership.id
                if name == "b_coordinator":
                    world.b.membership_id = membership.id
            issued = users.create_token(session, actor=SYSTEM, user_id=user.id, data=TokenCreate(name="test"))
            world.tokens[name] = issued.token
            world.token_ids[name] = issued.id
            world.user_ids[name] = user.id
        uow.commit()
    return world
