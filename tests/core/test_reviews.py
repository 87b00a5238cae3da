"""Review sessions: notes at frames with drawings, replies, playlists and decisions."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from bifrost_core.errors import InvalidInput, InvalidTransition, NotFound, PermissionDenied
from bifrost_core.events.models import Event
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.schemas import DecisionCreate, NoteCreate, PlaylistAdd, PlaylistCreate, ReplyCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.schemas import TaskUpdate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate


@pytest.fixture
def review(build):
    """A shot task with a version of frames 1001-1010, a supervisor, an artist and a client."""
    project, _shot, task = build.shot_task()
    frames = {
        "name": "plate",
        "kind": "frames",
        "frame_in": 1001,
        "frame_out": 1010,
        "files": [
            {"name": f"f.{n}.exr", "blob_hash": build.blob(b"x%d" % n), "frame": n} for n in range(1001, 1011)
        ],
    }
    version = versions.create_version(
        build.session, actor=SYSTEM, data=VersionCreate(task_id=task.id, representations=[frames])
    )
    # As on a project whose workflow moves no task on a new version: the task stays at wtg.
    build.session.execute(update(Task).where(Task.id == task.id).values(status="wtg"))
    build.session.refresh(task)
    people = {}
    for role in ("supervisor", "artist", "client"):
        user = build.user(role)
        build.member(project, user, role)
        people[role] = build.actor(user)
    return project, task, version, people


def _note(session, actor, version, **fields):
    return reviews.create_note(
        session, actor=actor, target="version", target_id=version.id, data=NoteCreate(body="look", **fields)
    )


def test_a_note_at_a_frame_range_with_a_drawing_is_stored(session, review):
    _, _, version, people = review
    drawing = {"strokes": [{"points": [[0.1, 0.2], [0.3, 0.4]]}]}
    note = _note(session, people["supervisor"], version, frame_in=1003, frame_out=1005, drawing=drawing)
    assert (note.frame_in, note.frame_out) == (1003, 1005)
    assert note.drawing["strokes"][0]["points"] == [[0.1, 0.2], [0.3, 0.4]]
    single = _note(session, people["artist"], version, frame_in=1010)
    assert (single.frame_in, single.frame_out) == (1010, 1010)


@pytest.mark.parametrize("frames", [{"frame_in": 1000}, {"frame_in": 1005, "frame_out": 1011}])
def test_frames_outside_the_version_are_refused(session, review, frames):
    _, _, version, people = review
    with pytest.raises(InvalidInput, match="outside version"):
        _note(session, people["supervisor"], version, **frames)


def test_frames_on_a_shot_note_or_a_version_without_frames_are_refused(session, review, build):
    _project, task, _, people = review
    with pytest.raises(InvalidInput, match="notes on versions"):
        reviews.create_note(
            session,
            actor=people["supervisor"],
            target="shot",
            target_id=task.shot_id,
            data=NoteCreate(body="x", frame_in=1),
        )
    bare = versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    with pytest.raises(InvalidInput, match="has no frames"):
        _note(session, people["supervisor"], bare, frame_in=1)


@pytest.mark.parametrize(
    "drawing",
    [
        {"strokes": [{"points": [[0.5, 0.5]] * 2001}]},
        {"strokes": [{"points": [[0.5, 0.5]] * 200}] * 60},
        {"strokes": [{"points": [[1.5, 0.5]]}]},
        {"strokes": [{"points": [[0.5, 0.5]], "colour": "red"}]},
        {"strokes": []},
        {"strokes": [{"points": [[0.5, 0.5]]}], "extra": 1},
    ],
)
def test_oversized_or_malformed_drawings_are_refused(drawing):
    with pytest.raises(ValueError):
        NoteCreate(body="x", frame_in=1001, drawing=drawing)


def test_unknown_version_is_not_found(session, review):
    _, _, _, people = review
    with pytest.raises(NotFound):
        reviews.create_note(
            session,
            actor=people["supervisor"],
            target="version",
            target_id=999_999,
            data=NoteCreate(body="x"),
        )


def test_replies_and_what_a_client_sees(session, review):
    _, _, version, people = review
    internal = _note(session, people["supervisor"], version)
    shared = _note(session, people["supervisor"], version, visibility="client")
    answer = reviews.reply(session, actor=people["client"], note_id=shared.id, data=ReplyCreate(body="ok"))
    assert answer.parent_id == shared.id and answer.version_id == version.id and answer.visibility == "client"
    with pytest.raises(NotFound):
        reviews.reply(session, actor=people["client"], note_id=internal.id, data=ReplyCreate(body="?"))
    seen = reviews.list_notes(session, actor=people["client"], target="version", target_id=version.id)
    assert [n.id for n in seen] == [shared.id, answer.id]
    everything = reviews.list_notes(session, actor=people["artist"], target="version", target_id=version.id)
    assert [n.id for n in everything] == [internal.id, shared.id, answer.id]


def test_playlists_ordered_and_shared_only_with_clients_when_marked(session, review, build):
    project, task, version, people = review
    second = versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    supervisor = people["supervisor"]
    daily = reviews.create_playlist(
        session,
        actor=supervisor,
        project_id=project.id,
        data=PlaylistCreate(name="daily 1", version_ids=[version.id]),
    )
    reviews.add_to_playlist(
        session, actor=supervisor, playlist_id=daily.id, data=PlaylistAdd(version_ids=[second.id], position=0)
    )
    assert [item.version_id for item in daily.items] == [second.id, version.id]
    client_review = reviews.create_playlist(
        session,
        actor=supervisor,
        project_id=project.id,
        data=PlaylistCreate(
            name="client 1", kind="client", shared_with_clients=True, version_ids=[version.id]
        ),
    )
    client = people["client"]
    listed = reviews.list_playlists(session, actor=client, project_id=project.id)
    assert [p.id for p in listed] == [client_review.id]
    with pytest.raises(NotFound):
        reviews.get_playlist(session, actor=client, playlist_id=daily.id)
    with pytest.raises(PermissionDenied):
        reviews.create_playlist(
            session, actor=people["artist"], project_id=project.id, data=PlaylistCreate(name="x")
        )
    with pytest.raises(InvalidInput, match="not found"):
        reviews.add_to_playlist(
            session, actor=supervisor, playlist_id=daily.id, data=PlaylistAdd(version_ids=[424242])
        )


def test_approve_moves_version_and_task_and_records_events(session, review):
    project, task, version, people = review
    for step in ("ip", "review"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status=step))
    decision = reviews.decide(
        session, actor=people["supervisor"], version_id=version.id, decision="approve", data=DecisionCreate()
    )
    assert (version.status, task.status) == ("approved", "approved")
    assert (decision.version_status, decision.task_status) == ("approved", "approved")
    kinds = session.scalars(select(Event.kind).where(Event.project_id == project.id)).all()
    assert "review.approve" in kinds


def test_request_changes_then_a_refused_transition_moves_nothing(session, review):
    _, task, version, people = review
    for step in ("ip", "review"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status=step))
    reviews.decide(
        session,
        actor=people["supervisor"],
        version_id=version.id,
        decision="request_changes",
        data=DecisionCreate(comment="darker"),
    )
    assert (version.status, task.status) == ("changes_requested", "retake")
    # changes_requested -> approved is not a version transition: the task stays where it is too.
    with pytest.raises(InvalidTransition):
        reviews.decide(
            session,
            actor=people["supervisor"],
            version_id=version.id,
            decision="approve",
            data=DecisionCreate(),
        )
    assert (version.status, task.status) == ("changes_requested", "retake")


@pytest.mark.parametrize("role", ["artist", "client"])
def test_decisions_need_the_review_permission(session, review, role):
    _, _, version, people = review
    with pytest.raises(PermissionDenied):
        reviews.decide(
            session, actor=people[role], version_id=version.id, decision="approve", data=DecisionCreate()
        )


def test_a_task_outside_review_stays_where_it_is(session, review):
    _, task, version, people = review
    assert task.status == "wtg"
    decision = reviews.decide(
        session, actor=people["supervisor"], version_id=version.id, decision="approve", data=DecisionCreate()
    )
    assert (version.status, task.status) == ("approved", "wtg")
    assert (decision.version_status, decision.task_status) == ("approved", "wtg")
