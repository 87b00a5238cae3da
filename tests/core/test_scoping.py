"""Authorization by construction: an id from a project outside the actor's scope is not found."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import event, select

from bifrost_core.assets import service as assets
from bifrost_core.assets.models import AssetType
from bifrost_core.assets.repository import AssetRepository, AssetTypeRepository, CastingRepository
from bifrost_core.assets.schemas import AssetCreate, AssetUpdate, CastingCreate
from bifrost_core.errors import NotFound, PermissionDenied
from bifrost_core.events.models import Event
from bifrost_core.events.repository import EventRepository
from bifrost_core.projects import service as projects
from bifrost_core.projects.repository import (
    EpisodeRepository,
    ProjectRepository,
    SequenceRepository,
    ShotRepository,
)
from bifrost_core.projects.schemas import (
    EpisodeCreate,
    ProjectUpdate,
    SequenceCreate,
    SequenceUpdate,
    ShotCreate,
    ShotUpdate,
)
from bifrost_core.runs import service as runs
from bifrost_core.scope import SYSTEM, Actor
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.models import TaskType
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskUpdate
from bifrost_core.users import service as users
from bifrost_core.users.repository import MembershipRepository
from bifrost_core.users.schemas import MembershipCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.repository import RepresentationRepository, VersionRepository
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate, VersionUpdate


@dataclass
class Production:
    project: object
    episode: object
    sequence: object
    shot: object
    asset_type: object
    asset: object
    casting: object
    task_type: object
    task: object
    version: object
    representation: object
    membership: object
    event: object


def _production(session, build, code: str, member) -> Production:
    project = build.project(code)
    episode = projects.create_episode(
        session, actor=SYSTEM, project_id=project.id, data=EpisodeCreate(code="e1")
    )
    sequence = build.sequence(project, episode_id=episode.id)
    shot = build.shot(sequence)
    asset = build.asset(project)
    casting = assets.cast(session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=asset.id))
    task = build.task(shot=shot)
    blob = build.blob(code.encode())
    representation = RepresentationIn(name="mov", kind="movie", files=[FileIn(name="a", blob_hash=blob)])
    version = versions.create_version(
        session, actor=SYSTEM, data=VersionCreate(task_id=task.id, representations=[representation])
    )
    membership = build.member(project, member)
    session.flush()
    return Production(
        project=project,
        episode=episode,
        sequence=sequence,
        shot=shot,
        asset_type=session.get(AssetType, asset.asset_type_id),
        asset=asset,
        casting=casting,
        task_type=session.get(TaskType, task.task_type_id),
        task=task,
        version=version,
        representation=version.representations[0],
        membership=membership,
        event=session.scalars(select(Event).where(Event.project_id == project.id).limit(1)).one(),
    )


@pytest.fixture
def two_projects(session, build):
    """Projects A and B with one of everything; `actor` is a member of A only."""
    ann, bob = build.user("ann"), build.user("bob")
    a = _production(session, build, "A", ann)
    b = _production(session, build, "B", bob)
    return a, b, build.actor(ann)


REPOSITORIES = [
    (ProjectRepository, "project"),
    (EpisodeRepository, "episode"),
    (SequenceRepository, "sequence"),
    (ShotRepository, "shot"),
    (AssetTypeRepository, "asset_type"),
    (AssetRepository, "asset"),
    (CastingRepository, "casting"),
    (TaskTypeRepository, "task_type"),
    (TaskRepository, "task"),
    (VersionRepository, "version"),
    (RepresentationRepository, "representation"),
    (MembershipRepository, "membership"),
    (EventRepository, "event"),
]


def _leaks(session, actor, repository, mine: int, theirs: int) -> list[str]:
    """What a repository wrongly shows (or hides) for an actor who is only in project A."""
    repo = repository(session, actor)
    problems = []
    try:
        repo.get(theirs)
        problems.append("get() found B's row")
    except NotFound:
        pass
    if repo.first(repository.model.id == theirs) is not None:
        problems.append("first() found B's row")
    listed = {row.id for row in repo.list()}
    if theirs in listed or mine not in listed:
        problems.append("list() is not A's rows")
    # Unscoped (the system actor), both are there: the filter is the scope, not the data.
    if not {mine, theirs} <= {row.id for row in repository(session).list()}:
        problems.append("the fixture lacks rows")
    return problems


def test_every_repository_hides_other_projects(session, two_projects):
    # One test over all repositories (building two productions per test would be slow);
    # the failure lists every repository that leaks.
    a, b, actor = two_projects
    leaks = {
        repository.__name__: problems
        for repository, attribute in REPOSITORIES
        if (
            problems := _leaks(session, actor, repository, getattr(a, attribute).id, getattr(b, attribute).id)
        )
    }
    assert leaks == {}
    assert ProjectRepository(session, actor).get(a.project.id).code == "A"


def test_lists_show_only_project_a(session, two_projects):
    a, _, actor = two_projects
    assert [p.code for p in ProjectRepository(session, actor).list()] == ["A"]
    for repository in (ShotRepository, AssetRepository, TaskRepository, VersionRepository, EventRepository):
        rows = repository(session, actor).list()
        assert rows and {row.project_id for row in rows} == {a.project.id}
    assert [r.id for r in RepresentationRepository(session, actor).list()] == [a.representation.id]
    # The admin sees both.
    admin = Actor(user_id=None, username="root", is_admin=True)
    assert [p.code for p in ProjectRepository(session, admin).list()] == ["A", "B"]


SERVICE_CALLS = {
    "update_project": lambda s, actor, b: projects.update_project(
        s, actor=actor, project_id=b.project.id, data=ProjectUpdate(name="x")
    ),
    "create_episode": lambda s, actor, b: projects.create_episode(
        s, actor=actor, project_id=b.project.id, data=EpisodeCreate(code="e9")
    ),
    "create_sequence": lambda s, actor, b: projects.create_sequence(
        s, actor=actor, project_id=b.project.id, data=SequenceCreate(code="sq9")
    ),
    "update_sequence": lambda s, actor, b: projects.update_sequence(
        s, actor=actor, sequence_id=b.sequence.id, data=SequenceUpdate(name="x")
    ),
    "create_shot": lambda s, actor, b: projects.create_shot(
        s, actor=actor, sequence_id=b.sequence.id, data=ShotCreate(code="sh9")
    ),
    "update_shot": lambda s, actor, b: projects.update_shot(
        s, actor=actor, shot_id=b.shot.id, data=ShotUpdate(description="x")
    ),
    "create_asset": lambda s, actor, b: assets.create_asset(
        s, actor=actor, project_id=b.project.id, data=AssetCreate(code="x", asset_type="prop")
    ),
    "update_asset": lambda s, actor, b: assets.update_asset(
        s, actor=actor, asset_id=b.asset.id, data=AssetUpdate(name="x")
    ),
    "cast": lambda s, actor, b: assets.cast(
        s, actor=actor, data=CastingCreate(shot_id=b.shot.id, asset_id=b.asset.id, count=3)
    ),
    "uncast": lambda s, actor, b: assets.uncast(s, actor=actor, casting_id=b.casting.id),
    "create_task": lambda s, actor, b: tasks.create_task(
        s, actor=actor, data=TaskCreate(task_type="fx", shot_id=b.shot.id)
    ),
    "update_task": lambda s, actor, b: tasks.update_task(
        s, actor=actor, task_id=b.task.id, data=TaskUpdate(status="ip")
    ),
    "create_version": lambda s, actor, b: versions.create_version(
        s, actor=actor, data=VersionCreate(task_id=b.task.id)
    ),
    "update_version": lambda s, actor, b: versions.update_version(
        s, actor=actor, version_id=b.version.id, data=VersionUpdate(comment="x")
    ),
    "set_membership": lambda s, actor, b: users.set_membership(
        s,
        actor=actor,
        project_id=b.project.id,
        data=MembershipCreate(user_id=actor.user_id, role="coordinator"),
    ),
    "record_run": lambda s, actor, b: runs.record_run(
        s, actor=actor, project_id=b.project.id, flow="ingest", action="flows.ingest", parameters={}
    ),
    "remove_membership": lambda s, actor, b: users.remove_membership(
        s, actor=actor, membership_id=b.membership.id
    ),
}


def test_services_refuse_ids_of_other_projects(session, two_projects):
    _, b, actor = two_projects
    before = (b.project.name, b.shot.description, b.task.status, b.version.comment, b.casting.count)
    not_refused = []
    for name, call in SERVICE_CALLS.items():
        try:
            call(session, actor, b)
            not_refused.append(name)
        except NotFound:
            pass
    assert not_refused == []
    assert (b.project.name, b.shot.description, b.task.status, b.version.comment, b.casting.count) == before


def test_services_check_permission_before_they_write(session, build, two_projects):
    """A client of project B sees it but may change none of it: every service refuses, before
    a single row is written or even changed in the session (a check after the write would
    leave it for the caller's rollback to undo, and do it for the CLI and flows too)."""
    _, b, _ = two_projects
    client_user = build.user("carl")
    build.member(b.project, client_user, "client")
    client = build.actor(client_user)
    session.flush()
    written: list[str] = []

    def watch(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            written.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", watch)
    try:
        for name, call in SERVICE_CALLS.items():
            with pytest.raises(PermissionDenied):
                call(session, client, b)
            assert not (session.new or session.dirty or session.deleted), name
            assert written == [], name
    finally:
        event.remove(engine, "before_cursor_execute", watch)


def test_an_actor_without_projects_sees_nothing(session, two_projects):
    a, _, _ = two_projects
    nobody = Actor(user_id=None, username="nobody")
    assert ProjectRepository(session, nobody).list() == []
    assert ShotRepository(session, nobody).list() == []
    with pytest.raises(NotFound):
        ShotRepository(session, nobody).get(a.shot.id)
