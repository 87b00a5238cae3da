"""Projects, episodes, sequences and shots: services and repositories."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Project, Shot
from bifrost_core.projects.repository import (
    EpisodeRepository,
    ProjectRepository,
    SequenceRepository,
    ShotRepository,
)
from bifrost_core.projects.schemas import (
    EpisodeCreate,
    EpisodeUpdate,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    SequenceUpdate,
    ShotCreate,
    ShotRead,
    ShotUpdate,
)
from bifrost_core.scope import SYSTEM, Actor
from bifrost_core.workflow.models import Status


def test_create_project_applies_defaults_and_installs_workflows(session, build):
    project = build.project("P1")
    read = ProjectRead.model_validate(project)
    assert (read.fps, read.resolution_width, read.resolution_height) == (Decimal("24"), 1920, 1080)
    assert (read.frame_padding, read.status) == (4, "active")
    kinds = set(session.scalars(select(Status.kind).where(Status.project_id == project.id)))
    assert kinds == {"task", "version"}


def test_duplicate_project_code_is_a_conflict(session, build):
    build.project("P1")
    with pytest.raises(Conflict, match="'P1' already exists"):
        build.project("P1")
    assert session.scalar(select(func.count(Project.id))) == 1


def test_only_admins_create_projects(session):
    artist = Actor(user_id=1, username="artist")
    with pytest.raises(PermissionDenied):
        projects.create_project(session, actor=artist, data=ProjectCreate(code="P1", name="P"))


@pytest.mark.parametrize(
    "fields",
    [
        {"code": "has space", "name": "P"},
        {"code": "P1", "name": ""},
        {"code": "P1", "name": "P", "fps": 0},
        {"code": "P1", "name": "P", "frame_padding": 11},
        {"code": "P1", "name": "P", "id": 7},  # inputs forbid extra fields
        {"code": "X" * 33, "name": "P"},  # the column is 32 characters
    ],
)
def test_project_input_is_validated(fields):
    with pytest.raises(ValidationError):
        ProjectCreate(**fields)


def test_project_update_applies_only_set_fields(session, build):
    project = build.project("P1", fps=Decimal("25"))
    projects.update_project(session, actor=SYSTEM, project_id=project.id, data=ProjectUpdate(name="Renamed"))
    session.expire_all()
    project = ProjectRepository(session).get(project.id)
    assert (project.name, project.fps, project.resolution_width) == ("Renamed", Decimal("25"), 1920)


def test_project_update_refuses_null_for_required_field(session, build):
    project = build.project("P1")
    with pytest.raises(InvalidInput, match="name cannot be null"):
        projects.update_project(session, actor=SYSTEM, project_id=project.id, data=ProjectUpdate(name=None))
    assert project.name == "Project P1"


def test_project_status_update_and_unknown_status(session, build):
    project = build.project("P1")
    projects.update_project(session, actor=SYSTEM, project_id=project.id, data=ProjectUpdate(status="closed"))
    assert ProjectRepository(session).by_code("P1").status == "closed"
    with pytest.raises(ValidationError):
        ProjectUpdate(status="deleted")


def test_project_repository_lookups(session, build):
    first, second, third = build.project("P1"), build.project("P2"), build.project("P3")
    repository = ProjectRepository(session)
    assert repository.by_code("P2").id == second.id
    with pytest.raises(NotFound, match="'nope'"):
        repository.by_code("nope")
    with pytest.raises(NotFound):
        repository.get(third.id + 1000)
    # Keyset pagination: `after` is the last id of the previous page.
    assert [p.id for p in repository.list(limit=2)] == [first.id, second.id]
    assert [p.id for p in repository.list(after=second.id, limit=2)] == [third.id]
    assert [p.code for p in repository.list(filters={"code": "P3", "status": None})] == ["P3"]


def test_episodes(session, build):
    project, other = build.project("P1"), build.project("P2")
    episode = projects.create_episode(
        session, actor=SYSTEM, project_id=project.id, data=EpisodeCreate(code="ep01", name="Pilot")
    )
    with pytest.raises(Conflict, match="episode 'ep01' already exists"):
        projects.create_episode(session, actor=SYSTEM, project_id=project.id, data=EpisodeCreate(code="ep01"))
    # Codes are unique per project only.
    projects.create_episode(session, actor=SYSTEM, project_id=other.id, data=EpisodeCreate(code="ep01"))
    projects.update_episode(session, actor=SYSTEM, episode_id=episode.id, data=EpisodeUpdate(name="First"))
    repository = EpisodeRepository(session)
    assert repository.by_code(project.id, "ep01").name == "First"
    with pytest.raises(NotFound):
        repository.by_code(project.id, "ep02")


def test_sequences_with_and_without_episode(session, build):
    project, other = build.project("P1"), build.project("P2")
    episode = projects.create_episode(
        session, actor=SYSTEM, project_id=project.id, data=EpisodeCreate(code="e1")
    )
    foreign = projects.create_episode(
        session, actor=SYSTEM, project_id=other.id, data=EpisodeCreate(code="e1")
    )
    sequence = build.sequence(project, "sq010", episode_id=episode.id)
    assert sequence.episode_id == episode.id
    with pytest.raises(InvalidInput, match="another project"):
        build.sequence(project, "sq020", episode_id=foreign.id)
    with pytest.raises(InvalidInput, match="another project"):
        projects.update_sequence(
            session, actor=SYSTEM, sequence_id=sequence.id, data=SequenceUpdate(episode_id=foreign.id)
        )
    with pytest.raises(Conflict, match="sequence 'sq010' already exists"):
        build.sequence(project, "sq010")
    # The episode is optional: an explicit null detaches the sequence, other fields stay.
    projects.update_sequence(
        session, actor=SYSTEM, sequence_id=sequence.id, data=SequenceUpdate(episode_id=None)
    )
    sequence = SequenceRepository(session).by_code(project.id, "sq010")
    assert (sequence.episode_id, sequence.code) == (None, "sq010")
    with pytest.raises(NotFound):
        SequenceRepository(session).by_code(project.id, "sq999")


def test_create_shot_copies_project_and_keeps_fields(session, build):
    project = build.project("P1")
    sequence = build.sequence(project)
    shot = build.shot(
        sequence, "sh010", frame_in=1001, frame_out=1050, handles_in=8, handles_out=8, meta={"lens": 35}
    )
    read = ShotRead.model_validate(ShotRepository(session).by_code(sequence.id, "sh010"))
    assert read.project_id == project.id
    assert (read.frame_in, read.frame_out, read.handles_in, read.handles_out) == (1001, 1050, 8, 8)
    assert read.meta == {"lens": 35}
    assert read.id == shot.id


def test_duplicate_shot_code_conflicts_only_within_a_sequence(session, build):
    project = build.project("P1")
    sq1, sq2 = build.sequence(project, "sq010"), build.sequence(project, "sq020")
    build.shot(sq1, "sh010")
    with pytest.raises(Conflict, match="shot 'sh010' already exists in sequence 'sq010'"):
        build.shot(sq1, "sh010")
    assert build.shot(sq2, "sh010").sequence_id == sq2.id


@pytest.mark.parametrize(
    "fields",
    [
        {"frame_in": 1100, "frame_out": 1001},
        {"handles_in": -1},
        {"handles_out": -5},
        {"cut_in": 20, "cut_out": 10},
        {"status": "deleted"},
        {"frame_out": 2**40},  # would overflow the INTEGER column on PostgreSQL
    ],
)
def test_bad_shot_input_is_refused(fields):
    with pytest.raises(ValidationError):
        ShotCreate(code="sh010", **fields)


@pytest.mark.parametrize(
    "fields",
    [{"handles_in": -1}, {"frame_in": 10, "frame_out": 5}, {"handles_out": -3}],
)
def test_bad_shot_update_input_is_refused(fields):
    with pytest.raises(ValidationError):
        ShotUpdate(**fields)


def test_shot_update_against_stored_frames_is_refused_and_nothing_written(database, uow, build):
    shot = build.shot(build.sequence(build.project("P1")), frame_in=1001, frame_out=1100)
    uow.commit()
    # frame_in alone is valid for the schema; only the service sees it pass the stored frame out.
    with UnitOfWork(database) as other, pytest.raises(InvalidInput, match=r"frame in \(1200\) is after"):
        projects.update_shot(other.session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(frame_in=1200))
    with UnitOfWork(database) as check:
        assert check.session.get(Shot, shot.id).frame_in == 1001


def test_shot_partial_update_changes_only_set_fields(session, build):
    shot = build.shot(build.sequence(build.project("P1")), frame_in=1001, frame_out=1100, handles_in=4)
    projects.update_shot(
        session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(description="hero", frame_out=1200)
    )
    session.expire_all()
    shot = ShotRepository(session).get(shot.id)
    assert (shot.description, shot.frame_in, shot.frame_out, shot.handles_in) == ("hero", 1001, 1200, 4)


@pytest.mark.parametrize("field", ["frame_in", "frame_out", "handles_in", "status", "meta"])
def test_shot_update_refuses_null_for_required_field(session, build, field):
    shot = build.shot(build.sequence(build.project("P1")))
    with pytest.raises(InvalidInput, match=f"{field} cannot be null"):
        projects.update_shot(session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(**{field: None}))


def test_shot_update_clears_a_nullable_field(session, build):
    shot = build.shot(build.sequence(build.project("P1")), cut_in=1, cut_out=10)
    projects.update_shot(session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(cut_in=None))
    assert (shot.cut_in, shot.cut_out) == (None, 10)


def test_database_refuses_an_inverted_frame_range(session, build):
    # The check constraint is the last line of defence if a caller bypasses the services.
    sequence = build.sequence(build.project("P1"))
    session.add(
        Shot(project_id=sequence.project_id, sequence_id=sequence.id, code="bad", frame_in=10, frame_out=1)
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_shot_repository_lists_by_sequence(session, build):
    project = build.project("P1")
    sq1, sq2 = build.sequence(project, "sq010"), build.sequence(project, "sq020")
    a, b = build.shot(sq1, "sh010"), build.shot(sq1, "sh020")
    build.shot(sq2, "sh010")
    assert [s.id for s in ShotRepository(session).list(filters={"sequence_id": sq1.id})] == [a.id, b.id]
    assert [s.id for s in ShotRepository(session).list(Shot.code == "sh020")] == [b.id]


def test_ids_beyond_64_bits_are_simply_not_found(session, build):
    # An API path like /shots/99999999999999999999 must be a 404, not an overflow (SQLite) or a 500.
    shot = build.shot(build.sequence(build.project("P1")))
    with pytest.raises(NotFound, match=f"shot {2**70} not found"):
        ShotRepository(session).get(2**70)
    assert ShotRepository(session).list(after=2**70) == []
    assert [s.id for s in ShotRepository(session).list(after=-(2**70))] == [shot.id]


def test_foreign_keys_are_enforced(session, build):
    # On SQLite they are off unless the connection hook turns them on.
    project = build.project("P1")
    session.add(Shot(project_id=project.id, sequence_id=424242, code="orphan"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path):
    # Readers never block the writer, and writers queue instead of failing with "locked".
    database = Database(f"sqlite:///{tmp_path / 'b.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
