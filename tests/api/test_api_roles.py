"""The role table at work: what each role of a project may read and change."""

from __future__ import annotations

from pathlib import Path

import pytest

from bifrost_core.users.permissions import ROLE_TABLE, markdown_table
from tests.support.world import World


def test_readme_shows_the_role_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme, "README role table is out of date: paste permissions.markdown_table()"


def test_every_role_is_known_to_the_user_model() -> None:
    from bifrost_core.users.models import ROLES

    assert set(ROLE_TABLE) == set(ROLES)


# (who, method, path, body, expected status)
CASES = [
    ("artist", "GET", "/shots/{shot_id}", None, 200),
    ("artist", "PATCH", "/shots/{shot_id}", {"description": "x"}, 403),
    ("artist", "PATCH", "/tasks/{task_id}", {"status": "ip"}, 403),  # not assigned to them
    ("artist", "PATCH", "/tasks/{task_id}", {"due_date": "2031-01-01"}, 403),
    ("artist", "POST", "/versions", {"task_id": "{task_id}"}, 201),
    ("artist", "PATCH", "/versions/{version_id}", {"status": "approved"}, 403),
    ("artist", "PUT", "/projects/{project_id}/memberships", {"user_id": "{client}", "role": "artist"}, 403),
    ("supervisor", "PATCH", "/versions/{version_id}", {"status": "approved"}, 200),
    ("supervisor", "POST", "/sequences/{sequence_id}/shots", {"code": "s2"}, 201),
    (
        "supervisor",
        "PUT",
        "/projects/{project_id}/memberships",
        {"user_id": "{client}", "role": "artist"},
        403,
    ),
    ("supervisor", "PATCH", "/projects/{project_id}", {"name": "x"}, 403),
    (
        "coordinator",
        "PUT",
        "/projects/{project_id}/memberships",
        {"user_id": "{client}", "role": "artist"},
        200,
    ),
    ("coordinator", "PATCH", "/projects/{project_id}", {"name": "x"}, 200),
    ("coordinator", "POST", "/projects", {"code": "NOPE", "name": "n"}, 403),
    ("client", "GET", "/shots/{shot_id}", None, 200),
    ("client", "GET", "/versions/{version_id}", None, 200),
    ("client", "GET", "/projects/{project_id}/tasks", None, 403),
    ("client", "GET", "/events", None, 200),
    ("client", "PATCH", "/shots/{shot_id}", {"description": "x"}, 403),
    ("client", "POST", "/versions", {"task_id": "{task_id}"}, 403),
    ("client", "GET", "/notes/{note_id}", None, 404),  # internal note: not shared with clients
    ("service", "POST", "/versions", {"task_id": "{task_id}"}, 201),
    ("service", "PATCH", "/tasks/{task_id}", {"status": "ip"}, 200),
    ("service", "PATCH", "/shots/{shot_id}", {"description": "x"}, 403),
    ("service", "GET", "/projects/{project_id}/memberships", None, 403),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status"), CASES)
def test_role_rules(client, world: World, who, method, path, body, status) -> None:
    ids = {**vars(world.a), "client": world.user_ids["client"]}
    if isinstance(body, dict):
        body = {k: ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()}
    answer = client.request(method, path.format(**ids), json=body, headers=world.headers(who))
    assert answer.status_code == status, answer.text


def test_artists_move_only_the_tasks_assigned_to_them(client, world: World) -> None:
    url, artist = f"/tasks/{world.a.task_id}", world.headers("artist")
    refused = client.patch(url, json={"status": "ip"}, headers=artist)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "artist may move a task through its status workflow only when assigned to it"
    )
    assign = {"assignee_ids": [world.user_ids["artist"], world.user_ids["supervisor"]]}
    assert client.patch(url, json=assign, headers=world.headers("coordinator")).status_code == 200
    moved = client.patch(url, json={"status": "ip"}, headers=artist)
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "ip"
    # Assigned or not, re-planning stays a coordinator's or supervisor's job.
    assert client.patch(url, json={"due_date": "2031-01-01"}, headers=artist).status_code == 403
    # The same rule holds in a bulk request, and for no other role.
    colleague = client.post(
        "/tasks", json={"task_type": "comp", "shot_id": world.a.shot_id}, headers=world.headers("coordinator")
    ).json()
    bulk = [{"op": "update_task", "id": colleague["id"], "data": {"status": "ip"}}]
    bulk_url = f"/projects/{world.a.project_id}/bulk"
    answer = client.post(bulk_url, json={"operations": bulk}, headers=artist)
    assert answer.status_code == 403
    assert answer.json()["error"]["details"]["index"] == 0
    assert (
        client.post(bulk_url, json={"operations": bulk}, headers=world.headers("service")).status_code == 200
    )


def test_clients_see_and_write_only_shared_notes(client, world: World) -> None:
    url = f"/versions/{world.a.version_id}/notes"
    shared = client.post(
        url, json={"body": "for the client", "visibility": "client"}, headers=world.headers("supervisor")
    )
    assert shared.status_code == 201
    own = client.post(
        url, json={"body": "client says", "visibility": "internal"}, headers=world.headers("client")
    )
    assert own.json()["visibility"] == "client"  # what a client writes is always shared
    seen = [note["body"] for note in client.get(url, headers=world.headers("client")).json()["items"]]
    assert seen == ["for the client", "client says"]
    studio = [note["body"] for note in client.get(url, headers=world.headers("artist")).json()["items"]]
    assert studio == ["nice", "for the client", "client says"]


def test_events_are_scoped_and_read_with_a_cursor(client, world: World) -> None:
    headers = world.headers("coordinator")
    first = client.get("/events", params={"limit": 1000}, headers=headers).json()
    assert first["items"]
    assert {event["project_id"] for event in first["items"]} == {world.a.project_id}
    cursor = first["items"][-1]["id"]
    client.patch(f"/shots/{world.a.shot_id}", json={"description": "moved"}, headers=headers)
    later = client.get("/events", params={"since": cursor}, headers=headers).json()["items"]
    assert [(e["kind"], e["entity_id"]) for e in later] == [("shot.updated", world.a.shot_id)]
    assert (
        client.get("/events", params={"project_id": world.b.project_id}, headers=headers).status_code == 404
    )
    # A client may not read events: it gets none, not an error.
    assert client.get("/events", headers=world.headers("client")).json()["items"] == []


def test_revoked_token_stops_working_at_once(client, world: World) -> None:
    headers = world.headers("artist")
    assert client.get("/projects", headers=headers).status_code == 200  # now cached
    answer = client.delete(f"/tokens/{world.token_ids['artist']}", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["revoked_at"] is not None
    assert client.get("/projects", headers=headers).status_code == 401


def test_membership_change_applies_to_the_next_request(client, world: World) -> None:
    headers = world.headers("artist")
    shot = f"/shots/{world.a.shot_id}"
    assert client.patch(shot, json={"description": "x"}, headers=headers).status_code == 403
    promote = {"user_id": world.user_ids["artist"], "role": "supervisor"}
    url = f"/projects/{world.a.project_id}/memberships"
    assert client.put(url, json=promote, headers=world.headers("coordinator")).status_code == 200
    assert client.patch(shot, json={"description": "x"}, headers=headers).status_code == 200


def test_token_lifecycle_for_the_caller(client, world: World) -> None:
    headers = world.headers("artist")
    issued = client.post("/tokens", json={"name": "nuke", "expires_in_days": 30}, headers=headers).json()
    assert issued["token"].startswith("bft_")
    fresh = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/users/me", headers=fresh).json()["username"] == "artist"
    listed = client.get("/tokens", headers=fresh).json()["items"]
    assert {t["name"] for t in listed} == {"test", "nuke"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    used = next(t for t in listed if t["name"] == "nuke")
    assert used["last_used_at"] is not None
