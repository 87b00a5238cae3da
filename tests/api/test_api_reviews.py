"""Review sessions over HTTP: playlists, notes at frames with drawings, replies, decisions;
every bad input a 4xx JSON error that writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.events.models import Event
from bifrost_core.reviews.models import Decision, Note, Playlist, PlaylistItem
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskUpdate
from bifrost_core.versions.models import Representation, Version
from tests.support.world import World

DRAWING = {"strokes": [{"colour": "#00ff00", "width": 0.01, "points": [[0.1, 0.1], [0.5, 0.5]]}]}


@pytest.fixture
def framed(world: World, database) -> World:
    """World's PRJA version given the frames 1001-1010 and its task put in review."""
    with UnitOfWork(database) as uow:
        rep = uow.session.scalars(
            select(Representation).where(Representation.id == world.a.representation_id)
        ).one()
        rep.frame_in, rep.frame_out = 1001, 1010
        for status in ("ip", "review"):
            tasks.update_task(
                uow.session, actor=SYSTEM, task_id=world.a.task_id, data=TaskUpdate(status=status)
            )
        uow.commit()
    return world


def _counts(database) -> dict[str, int]:
    with UnitOfWork(database) as uow:
        return {
            model.__name__: uow.session.scalar(select(func.count()).select_from(model))
            for model in (Note, Playlist, PlaylistItem, Decision, Event)
        }


def test_a_review_over_http(client, framed: World, database) -> None:
    world, sup = framed, framed.headers("supervisor")
    version = world.a.version_id
    made = client.post(
        f"/projects/{world.a.project_id}/playlists",
        json={"name": "client review 1", "version_ids": [version], "shared_with_clients": True},
        headers=sup,
    )
    assert made.status_code == 201, made.text
    playlist = made.json()
    assert playlist["version_ids"] == [version]
    note = client.post(
        f"/versions/{version}/notes",
        json={
            "body": "mask edge",
            "frame_in": 1002,
            "frame_out": 1004,
            "drawing": DRAWING,
            "visibility": "client",
        },
        headers=sup,
    )
    assert note.status_code == 201, note.text
    assert (note.json()["frame_in"], note.json()["frame_out"]) == (1002, 1004)
    assert note.json()["drawing"] == DRAWING
    reply = client.post(
        f"/notes/{note.json()['id']}/replies", json={"body": "agreed"}, headers=world.headers("client")
    )
    assert reply.status_code == 201 and reply.json()["parent_id"] == note.json()["id"]
    listed = client.get(f"/versions/{version}/notes", headers=world.headers("client")).json()["items"]
    assert [n["body"] for n in listed] == ["mask edge", "agreed"]  # the world's internal note is not shown
    decided = client.post(f"/versions/{version}/approve", json={"playlist_id": playlist["id"]}, headers=sup)
    assert decided.status_code == 201, decided.text
    assert (decided.json()["version_status"], decided.json()["task_status"]) == ("approved", "approved")
    assert client.get(f"/versions/{version}", headers=sup).json()["status"] == "approved"
    assert client.get(f"/tasks/{world.a.task_id}", headers=sup).json()["status"] == "approved"
    history = client.get(f"/versions/{version}/decisions", headers=world.headers("client")).json()["items"]
    assert [d["decision"] for d in history] == ["approve"]
    events = client.get(f"/events?project_id={world.a.project_id}&limit=1000", headers=sup).json()["items"]
    assert "review.approve" in {e["kind"] for e in events}


def test_clients_see_only_shared_playlists(client, framed: World) -> None:
    world, sup = framed, framed.headers("supervisor")
    url = f"/projects/{world.a.project_id}/playlists"
    internal = client.post(url, json={"name": "internal"}, headers=sup).json()
    shared = client.post(
        url, json={"name": "client", "kind": "client", "shared_with_clients": True}, headers=sup
    ).json()
    assert [p["id"] for p in client.get(url, headers=world.headers("client")).json()["items"]] == [
        shared["id"]
    ]
    assert client.get(f"/playlists/{internal['id']}", headers=world.headers("client")).status_code == 404
    assert client.get(f"/playlists/{internal['id']}", headers=world.headers("artist")).status_code == 200
    assert client.get(f"/playlists/{shared['id']}", headers=world.headers("b_coordinator")).status_code == 404
    moved = client.post(
        f"/playlists/{internal['id']}/versions", json={"version_ids": [world.a.version_id]}, headers=sup
    ).json()
    assert moved["version_ids"] == [world.a.version_id]
    removed = client.delete(f"/playlists/{internal['id']}/versions/{world.a.version_id}", headers=sup)
    assert removed.json()["version_ids"] == []
    renamed = client.patch(f"/playlists/{internal['id']}", json={"shared_with_clients": True}, headers=sup)
    assert renamed.json()["shared_with_clients"] is True


BIG = {"strokes": [{"points": [[0.5, 0.5]] * 2001}]}
MANY = {"strokes": [{"points": [[0.5, 0.5]] * 200}] * 60}

BAD = [
    # (who, method, path, body, status, message)
    ("supervisor", "POST", "/versions/999999/notes", {"body": "x"}, 404, "version 999999 not found"),
    ("supervisor", "POST", "/versions/{b_version}/notes", {"body": "x"}, 404, "not found"),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1000},
        422,
        "outside version",
    ),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1009, "frame_out": 1011},
        422,
        "outside",
    ),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1005, "frame_out": 1004},
        422,
        "frame_out",
    ),
    ("supervisor", "POST", "/versions/{version}/notes", {"body": "x", "frame_in": 2**40}, 422, "frame_in"),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1001, "drawing": BIG},
        422,
        "points",
    ),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1001, "drawing": MANY},
        422,
        "at most",
    ),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "drawing": {"strokes": [{"points": [[0, 0]]}]}},
        422,
        "frame_in",
    ),
    (
        "supervisor",
        "POST",
        "/versions/{version}/notes",
        {"body": "x", "frame_in": 1001, "drawing": {"strokes": [{"points": [[2, 0]]}]}},
        422,
        "less than or equal",
    ),
    ("supervisor", "POST", "/shots/{shot}/notes", {"body": "x", "frame_in": 1001}, 422, "notes on versions"),
    ("supervisor", "POST", "/notes/999999/replies", {"body": "x"}, 404, "note 999999 not found"),
    ("client", "POST", "/notes/{internal_note}/replies", {"body": "x"}, 404, "not found"),
    ("supervisor", "POST", "/notes/{internal_note}/replies", {"body": ""}, 422, "body"),
    ("artist", "POST", "/versions/{version}/approve", {}, 403, "artist may not"),
    ("client", "POST", "/versions/{version}/request-changes", {}, 403, "client may not"),
    ("service", "POST", "/versions/{version}/approve", {}, 403, "service may not"),
    ("supervisor", "POST", "/versions/999999/approve", {}, 404, "not found"),
    ("supervisor", "POST", "/versions/{version}/approve", {"status": "approved"}, 422, "status"),
    ("supervisor", "POST", "/versions/{version}/approve", {"playlist_id": 999999}, 404, "playlist 999999"),
    ("artist", "POST", "/projects/{project}/playlists", {"name": "x"}, 403, "artist may not"),
    ("supervisor", "POST", "/projects/{project}/playlists", {"name": ""}, 422, "name"),
    ("supervisor", "POST", "/projects/{project}/playlists", {"name": "x", "kind": "weekly"}, 422, "kind"),
    (
        "supervisor",
        "POST",
        "/projects/{project}/playlists",
        {"name": "x", "version_ids": [999999]},
        422,
        "version 999999",
    ),
    (
        "supervisor",
        "POST",
        "/projects/{project}/playlists",
        {"name": "x", "version_ids": ["{b_version}"]},
        422,
        "not found",
    ),
    ("supervisor", "POST", "/projects/{b_project}/playlists", {"name": "x"}, 404, "not found"),
    ("supervisor", "POST", "/playlists/999999/versions", {"version_ids": [1]}, 404, "playlist 999999"),
]


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status", "message"), BAD, ids=[f"{c[0]} {c[2]} {c[5]}" for c in BAD]
)
def test_bad_input_is_a_4xx_that_writes_nothing(
    client, framed: World, database, who, method, path, body, status, message
):
    world = framed
    ids = {
        "version": world.a.version_id,
        "b_version": world.b.version_id,
        "shot": world.a.shot_id,
        "project": world.a.project_id,
        "b_project": world.b.project_id,
        "internal_note": world.a.note_id,
    }
    before = _counts(database)
    answer = client.request(method, _fill(path, ids), json=_fill(body, ids), headers=world.headers(who))
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"], answer.text
    assert _counts(database) == before
    with UnitOfWork(database) as uow:
        assert uow.session.get(Version, world.a.version_id).status == "pending_review"


def test_approving_leaves_a_task_outside_review_and_a_refused_version_move_changes_nothing(
    client, world: World, database
) -> None:
    sup = world.headers("supervisor")
    version = world.a.version_id
    answer = client.post(f"/versions/{version}/request-changes", json={}, headers=sup)
    assert answer.status_code == 201 and (answer.json()["version_status"], answer.json()["task_status"]) == (
        "changes_requested",
        "wtg",
    )
    before = _counts(database)
    refused = client.post(f"/versions/{version}/approve", json={}, headers=sup)
    assert refused.status_code == 409
    assert "from 'changes_requested' to 'approved'" in refused.json()["error"]["message"]
    assert _counts(database) == before


def test_the_python_client_reviews(client, framed: World) -> None:
    from bifrost_client import BifrostClient
    from bifrost_client.client import ApiError

    world = framed
    with BifrostClient(
        "http://testserver", world.tokens["supervisor"], transport=client._transport
    ) as bifrost:
        playlist = bifrost.create_playlist(world.a.project_id, "client review", shared_with_clients=True)
        assert bifrost.add_to_playlist(playlist["id"], [world.a.version_id])["version_ids"] == [
            world.a.version_id
        ]
        note = bifrost.add_note(world.a.version_id, "grain", frame_in=1003, drawing=DRAWING)
        assert (note["frame_in"], note["frame_out"]) == (1003, 1003)
        assert bifrost.reply(note["id"], "ok")["parent_id"] == note["id"]
        assert bifrost.request_changes(world.a.version_id, comment="grain")["task_status"] == "retake"
        with pytest.raises(ApiError) as refused:
            bifrost.add_note(world.a.version_id, "x", frame_in=5000)
        assert refused.value.status == 422
