"""Events: one row per change, delivered to subscribers after commit and never after rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import CastingCreate
from bifrost_core.db.uow import UnitOfWork, after_commit
from bifrost_core.events import bus
from bifrost_core.events.models import Event
from bifrost_core.events.repository import EventRepository
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, ShotCreate, ShotUpdate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskUpdate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate, VersionUpdate


def kinds(session) -> list[str]:
    return list(session.scalars(select(Event.kind).order_by(Event.id)))


def test_every_change_records_an_event(session, build):
    project, shot, task = build.shot_task()
    asset = build.asset(project)
    casting = assets.cast(session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=asset.id))
    projects.update_shot(session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(description="x"))
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="ip"))
    version = versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    versions.update_version(
        session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(status="approved")
    )
    assets.uncast(session, actor=SYSTEM, casting_id=casting.id)
    session.flush()
    assert kinds(session) == [
        "project.created",
        "sequence.created",
        "shot.created",
        "task_type.created",  # made on the fly by the first "comp" task
        "task.created",
        "asset_type.created",
        "asset.created",
        "casting.set",
        "shot.updated",
        "task.updated",
        "version.created",
        "task.updated",  # the new version moved its task to review
        "version.updated",
        "casting.removed",
    ]
    status_change, moved = session.scalars(select(Event).where(Event.kind == "task.updated")).all()
    assert (status_change.entity_id, status_change.project_id) == (task.id, project.id)
    assert status_change.payload == {"status": ["wtg", "ip"]}
    assert moved.payload == {"status": ["ip", "review"], "version_id": version.id}


def test_events_carry_the_actor(session, build):
    project = build.project("P1")
    user = build.user("ann")
    build.member(project, user, "supervisor")  # a role that may create shots
    actor = build.actor(user)
    sequence = build.sequence(project)
    projects.create_shot(session, actor=actor, sequence_id=sequence.id, data=ShotCreate(code="sh1"))
    session.flush()
    event = session.scalars(select(Event).where(Event.kind == "shot.created")).one()
    assert event.actor_id == user.id


def test_subscribers_get_events_only_after_commit(uow, build, delivered):
    project = build.project("P1")
    build.sequence(project)
    uow.session.flush()
    assert delivered == []  # flushed is not committed
    uow.commit()
    assert [(e.kind, e.project_id) for e in delivered] == [
        ("project.created", project.id),
        ("sequence.created", project.id),
    ]
    assert all(e.id is not None for e in delivered)


def test_rolled_back_events_are_never_delivered(database, uow, build, delivered):
    build.project("P1")
    uow.rollback()
    build.project("P2")
    uow.commit()
    assert [e.payload["code"] for e in delivered] == ["P2"]
    with UnitOfWork(database) as failed:
        build.__class__(failed.session).project("P3")
        failed.session.flush()
        # leaving without commit rolls back
    with UnitOfWork(database) as other:
        other.commit()  # an empty commit must not deliver anything left over
    assert [e.payload["code"] for e in delivered] == ["P2"]
    with UnitOfWork(database) as check:
        assert [e.payload["code"] for e in EventRepository(check.session).list()] == ["P2"]


def test_exception_inside_a_unit_of_work_rolls_back(database, delivered):
    with pytest.raises(RuntimeError), UnitOfWork(database) as uow:
        projects.create_project(uow.session, actor=SYSTEM, data=ProjectCreate(code="P1", name="P"))
        uow.session.flush()
        raise RuntimeError("boom")
    with UnitOfWork(database) as check:
        assert check.session.scalar(select(func.count(Event.id))) == 0
    assert delivered == []


def test_a_failing_subscriber_does_not_stop_the_others(uow, build, delivered):
    def broken(_event):
        raise RuntimeError("subscriber bug")

    # The broken handler must come first to show that it does not starve the ones after it.
    bus.unsubscribe(delivered.append)
    bus.subscribe(broken)
    bus.subscribe(delivered.append)
    try:
        build.project("P1")
        uow.commit()
    finally:
        bus.unsubscribe(broken)
    assert [e.kind for e in delivered] == ["project.created"]


def test_events_of_a_rolled_back_savepoint_are_not_delivered(uow, build, delivered):
    build.project("P1")
    savepoint = uow.session.begin_nested()
    build.project("P2")
    savepoint.rollback()
    uow.commit()
    assert [e.payload["code"] for e in delivered] == ["P1"]
    assert [e.payload["code"] for e in EventRepository(uow.session).list()] == ["P1"]


def test_savepoint_rolled_back_first_does_not_lose_later_events(uow, build, delivered):
    savepoint = uow.session.begin_nested()
    build.project("P1")
    savepoint.rollback()
    build.project("P2")
    uow.commit()
    assert [e.payload["code"] for e in delivered] == ["P2"]


def test_released_savepoint_delivers_only_at_the_outer_commit(uow, build, delivered):
    with uow.session.begin_nested():
        build.project("P1")
    assert delivered == []
    uow.commit()
    assert [e.payload["code"] for e in delivered] == ["P1"]


def test_side_effects_queued_in_a_rolled_back_savepoint_are_dropped(uow):
    ran: list[str] = []
    after_commit(uow.session, lambda: ran.append("outer"))
    savepoint = uow.session.begin_nested()
    after_commit(uow.session, lambda: ran.append("inner"))
    savepoint.rollback()
    uow.commit()
    assert ran == ["outer"]


def test_side_effects_of_a_session_closed_without_commit_never_run(database):
    # A plain session (not a UnitOfWork) that is closed and then reused.
    ran: list[str] = []
    session = database.session()
    session.execute(select(1))
    after_commit(session, lambda: ran.append("stale"))
    session.close()
    session.execute(select(1))
    session.commit()
    session.close()
    assert ran == []


def test_update_payload_keeps_json_values(session, build):
    shot = build.shot(build.sequence(build.project("P1")))
    projects.update_shot(
        session, actor=SYSTEM, shot_id=shot.id, data=ShotUpdate(meta={"lens": 35}, fps="23.976", cut_in=None)
    )
    session.flush()
    event = session.scalars(select(Event).where(Event.kind == "shot.updated")).one()
    # Consumers read the change as data (a dict), not as Python's repr of it.
    assert event.payload == {"meta": {"lens": 35}, "fps": "23.976", "cut_in": None}
