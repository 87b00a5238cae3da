"""Writes: mass assignment, partial updates, idempotency keys, bulk all-or-nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects.models import Shot
from bifrost_core.versions.models import Version
from tests.support.world import World

MASS_ASSIGNMENT = [
    ("POST", "/sequences/{sequence_id}/shots", {"code": "sh500", "id": 999}),
    ("POST", "/sequences/{sequence_id}/shots", {"code": "sh500", "project_id": "{b_project}"}),
    ("POST", "/sequences/{sequence_id}/shots", {"code": "sh500", "sequence_id": 1}),
    ("PATCH", "/shots/{shot_id}", {"project_id": "{b_project}"}),
    ("PATCH", "/shots/{shot_id}", {"created_at": "2000-01-01T00:00:00Z"}),
    ("POST", "/projects/{project_id}/assets", {"code": "a1", "asset_type": "char", "created_by": 1}),
    ("POST", "/versions", {"task_id": "{task_id}", "number": 7}),
    ("POST", "/versions", {"task_id": "{task_id}", "status": "approved"}),
    ("POST", "/versions", {"task_id": "{task_id}", "author_id": 1}),
    ("PATCH", "/versions/{version_id}", {"number": 3}),
    ("PATCH", "/versions/{version_id}", {"task_id": 1}),
    ("POST", "/shots/{shot_id}/notes", {"body": "x", "author_id": 1}),
    ("POST", "/users", {"username": "sneaky", "id": 1}),
    ("PATCH", "/users/{artist}", {"is_admin": True}),
    ("POST", "/tokens", {"user_id": 1}),
]


def _snapshot(client, world: World) -> list:
    headers = world.headers("admin")
    paths = [
        f"/projects/{world.a.project_id}/shots",
        f"/projects/{world.a.project_id}/assets",
        f"/projects/{world.a.project_id}/versions",
        "/users",
        f"/shots/{world.a.shot_id}",
        f"/versions/{world.a.version_id}",
    ]
    return [client.get(path, headers=headers).json() for path in paths]


@pytest.mark.parametrize(("method", "path", "body"), MASS_ASSIGNMENT)
def test_mass_assignment_is_refused_and_changes_nothing(client, world: World, method, path, body) -> None:
    ids = {**vars(world.a), "b_project": world.b.project_id, "artist": world.user_ids["artist"]}
    body = {k: ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()}
    before = _snapshot(client, world)
    answer = client.request(method, path.format(**ids), json=body, headers=world.headers("admin"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert _snapshot(client, world) == before


def test_partial_update_changes_only_what_was_sent(client, world: World) -> None:
    headers = world.headers("coordinator")
    url = f"/shots/{world.a.shot_id}"
    before = client.get(url, headers=headers).json()
    after = client.patch(url, json={"description": "wider"}, headers=headers).json()
    assert after["description"] == "wider"
    unchanged = {k: v for k, v in before.items() if k not in ("description", "updated_at")}
    assert {k: after[k] for k in unchanged} == unchanged
    # Frames checked against the stored values, not just the request's.
    answer = client.patch(url, json={"frame_in": before["frame_out"] + 1}, headers=headers)
    assert answer.status_code == 422


def _count(database, model, *conditions) -> int:
    with UnitOfWork(database) as uow:
        return uow.session.scalar(select(func.count()).select_from(model).where(*conditions))


def test_idempotency_key_replays_and_refuses_another_body(client, world: World, database) -> None:
    headers = {**world.headers("coordinator"), "Idempotency-Key": "publish-1"}
    url = f"/sequences/{world.a.sequence_id}/shots"
    first = client.post(url, json={"code": "sh100"}, headers=headers)
    again = client.post(url, json={"code": "sh100"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post(url, json={"code": "sh101"}, headers=headers)
    assert other.status_code == 409
    assert _count(database, Shot, Shot.code.in_(["sh100", "sh101"])) == 1
    # Keys belong to their user: the same key from someone else is a new request.
    mine = {**world.headers("supervisor"), "Idempotency-Key": "publish-1"}
    assert client.post(url, json={"code": "sh102"}, headers=mine).status_code == 201


def test_failed_request_does_not_burn_its_key(client, world: World) -> None:
    headers = {**world.headers("coordinator"), "Idempotency-Key": "k2"}
    url = f"/sequences/{world.a.sequence_id}/shots"
    assert client.post(url, json={"code": "sh010"}, headers=headers).status_code == 409  # duplicate code
    assert client.post(url, json={"code": "sh010"}, headers=headers).status_code == 409
    assert client.post(url, json={"code": "sh011"}, headers=headers).status_code == 201


def test_concurrent_identical_posts_in_process_create_one_row(client, world: World, database) -> None:
    headers = {**world.headers("artist"), "Idempotency-Key": "v-1"}

    def post(_):
        return client.post("/versions", json={"task_id": world.a.task_id, "comment": "c"}, headers=headers)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert _count(database, Version, Version.comment == "c") == 1


def test_bulk_is_all_or_nothing(client, world: World, database) -> None:
    headers = world.headers("coordinator")
    url = f"/projects/{world.a.project_id}/bulk"
    operations = [
        {"op": "create_shot", "sequence_id": world.a.sequence_id, "data": {"code": f"b{i}"}} for i in range(5)
    ]
    operations.append({"op": "update_shot", "id": world.a.shot_id, "data": {"status": "on_hold"}})
    bad = [*operations, {"op": "update_shot", "id": world.b.shot_id, "data": {"status": "omitted"}}]
    answer = client.post(url, json={"operations": bad}, headers=headers)
    assert answer.status_code == 404
    assert answer.json()["error"]["details"]["index"] == 6
    assert _count(database, Shot, Shot.code.like("b%")) == 0
    assert client.get(f"/shots/{world.a.shot_id}", headers=headers).json()["status"] == "active"

    answer = client.post(url, json={"operations": operations}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert [r["op"] for r in answer.json()["results"]] == ["create_shot"] * 5 + ["update_shot"]
    assert _count(database, Shot, Shot.code.like("b%")) == 5
    assert client.get(f"/shots/{world.a.shot_id}", headers=headers).json()["status"] == "on_hold"


def test_bulk_refuses_another_projects_entity_even_to_an_admin(client, world: World) -> None:
    """The bulk of project A touches only A: an admin, who sees B too, gets 404 for B's shot,
    and B's shot is as it was."""
    headers = world.headers("admin")
    operations = [{"op": "update_shot", "id": world.b.shot_id, "data": {"status": "on_hold"}}]
    answer = client.post(
        f"/projects/{world.a.project_id}/bulk", json={"operations": operations}, headers=headers
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["details"]["index"] == 0
    assert client.get(f"/shots/{world.b.shot_id}", headers=headers).json()["status"] == "active"


def test_bulk_checks_each_operations_role(client, world: World, database) -> None:
    assign = {"assignee_ids": [world.user_ids["artist"]]}
    client.patch(f"/tasks/{world.a.task_id}", json=assign, headers=world.headers("coordinator"))
    operations = [
        {"op": "update_task", "id": world.a.task_id, "data": {"status": "ip"}},
        {"op": "create_shot", "sequence_id": world.a.sequence_id, "data": {"code": "nope"}},
    ]
    answer = client.post(
        f"/projects/{world.a.project_id}/bulk",
        json={"operations": operations},
        headers=world.headers("artist"),
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["details"]["index"] == 1
    task = client.get(f"/tasks/{world.a.task_id}", headers=world.headers("artist")).json()
    assert task["status"] == "wtg"


def test_a_rule_broken_in_the_body_reads_as_a_sentence(client, world: World) -> None:
    url = f"/sequences/{world.a.sequence_id}/shots"
    body = {"code": "sh900", "frame_in": 1100, "frame_out": 1001}
    answer = client.post(url, json=body, headers=world.headers("coordinator"))
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "body: frame in (1100) is after frame out (1001)"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"path_templates": {"shot": "{project}/{nosuch}/{name}.{ext}"}}, "unknown field {nosuch}"),
        ({"path_templates": {"shot": "/abs/{name}.{ext}"}}, "not a clean relative path"),
        ({"path_templates": ["{name}"]}, "config.path_templates must be an object"),
        ({"naming_rules": "{sequence}/{shot}"}, "naming rules must be a list"),
    ],
)
def test_bad_naming_rules_or_path_templates_are_refused_when_set(
    client, world: World, config: dict, message: str
) -> None:
    url = f"/projects/{world.a.project_id}"
    headers = world.headers("admin")
    before = client.get(url, headers=headers).json()["config"]
    answer = client.patch(url, json={"config": config}, headers=headers)
    assert answer.status_code == 422
    assert message in answer.json()["error"]["message"]
    assert client.get(url, headers=headers).json()["config"] == before


def test_a_representation_lists_where_each_file_is_read(client, world: World) -> None:
    url = f"/representations/{world.a.representation_id}"
    files = client.get(url, headers=world.headers("artist")).json()["files"]
    # Made through the API, not ingest: no published path; the blob's URL in each tier.
    assert [(f["name"], f["published_path"], f["locations"]) for f in files] == [
        ("a.mov", None, {"hot": "file:///x"})
    ]
