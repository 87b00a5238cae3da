"""One error shape, the right status for each failure, limits, and no 500 for any input."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest

from api import auth
from bifrost_core import writes
from bifrost_core.users import service as users
from tests.support.world import World


def _error(answer, status: int, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_framework_errors_use_the_one_shape(client, world: World) -> None:
    headers = world.headers("admin")
    _error(client.get("/nowhere", headers=headers), 404, "not_found")
    _error(client.delete("/projects", headers=headers), 405, "method_not_allowed")
    _error(
        client.post(
            "/projects", content=b'{"code": ', headers={**headers, "content-type": "application/json"}
        ),
        422,
        "invalid_input",
    )
    _error(client.get("/projects?limit=100000", headers=headers), 422, "invalid_input")
    _error(client.get(f"/shots/{2**64}", headers=headers), 422, "invalid_input")
    _error(client.get("/shots/abc", headers=headers), 422, "invalid_input")
    _error(
        client.post("/tokens", json={}, headers={**headers, "Idempotency-Key": "x" * 300}), 400, "bad_request"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"code": "sh1", "frame_in": 10**30},
        {"code": "sh1", "frame_in": -(2**70)},
        {"code": "sh1", "handles_in": 2**63},
        {"code": "sh1", "meta": {"n": 10**400}},
        {"code": "sh1", "description": "nul\x00byte"},
        {"code": "sh1", "meta": {"k\x00": "\x00"}},
        {"code": "sh1", "fps": "NaN"},
        {"code": "sh1", "fps": 1e308},
        {"code": "x" * 10_000},
        {"code": "sh1", "status": None},
        [1, 2, 3],
        "a string",
        None,
    ],
)
def test_hostile_bodies_never_500(client, world: World, body) -> None:
    answer = client.post(f"/sequences/{world.a.sequence_id}/shots", json=body, headers=world.headers("admin"))
    assert answer.status_code in (201, 422), answer.text
    if answer.status_code == 422:
        _error(answer, 422, "invalid_input")


def test_body_size_limit_is_413(make_client, world: World) -> None:
    client = make_client(api_max_body_bytes=2048)
    headers = world.headers("admin")
    big = {"code": "sh1", "description": "x" * 4000}
    _error(
        client.post(f"/sequences/{world.a.sequence_id}/shots", json=big, headers=headers), 413, "too_large"
    )

    def chunks():
        yield b'{"code": "sh1", "description": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    # No Content-Length: the limit still holds while the body streams in.
    chunked = client.post(
        f"/sequences/{world.a.sequence_id}/shots",
        content=chunks(),
        headers={**headers, "content-type": "application/json"},
    )
    _error(chunked, 413, "too_large")


def test_rate_limit_per_user(make_client, world: World) -> None:
    client = make_client(api_rate_limit=3)
    for _ in range(3):
        assert client.get("/projects", headers=world.headers("coordinator")).status_code == 200
    limited = client.get("/projects", headers=world.headers("coordinator"))
    _error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Another user has their own budget (a user's tokens share one: see test_api_tokens).
    assert client.get("/projects", headers=world.headers("artist")).status_code == 200


def test_bad_tokens_from_one_address_are_refused_before_the_database(
    make_client, world: World, monkeypatch
) -> None:
    # One minute window throughout, whatever the clock says.
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: 1_000_010.0, monotonic=time.monotonic))
    client = make_client(api_auth_failures=3)
    good, bad = world.headers("artist"), {"Authorization": "Bearer guessed-token"}
    assert client.get("/projects", headers=good).status_code == 200
    for _ in range(3):
        _error(client.get("/projects", headers=bad), 401, "unauthenticated")
    lookups: list[str] = []
    real_authenticate = users.authenticate

    def authenticate(session, secret):
        lookups.append(secret)
        return real_authenticate(session, secret)

    monkeypatch.setattr(users, "authenticate", authenticate)
    limited = client.get("/projects", headers=bad)
    body = _error(limited, 429, "rate_limited")
    assert body["message"] == "too many failed authentications from testclient; retry in 10 s"
    assert limited.headers["retry-after"] == "10"
    assert lookups == []
    # A token this address used a moment ago still works; one it never used waits too.
    assert client.get("/projects", headers=good).status_code == 200
    _error(client.get("/projects", headers=world.headers("coordinator")), 429, "rate_limited")
    assert lookups == []


def test_integrity_error_from_a_race_is_409(client, world: World, monkeypatch) -> None:
    # Skip the service's own duplicate check, as a concurrent insert would: the unique
    # constraint of the database is what refuses the second shot.
    monkeypatch.setattr(writes, "ensure_absent", lambda *args, **kwargs: None)
    url = f"/sequences/{world.a.sequence_id}/shots"
    headers = world.headers("coordinator")
    assert client.post(url, json={"code": "race"}, headers=headers).status_code == 201
    _error(client.post(url, json={"code": "race"}, headers=headers), 409, "conflict")


def test_request_id_header_and_json_access_log(client, world: World, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="bifrost.api.access"):
        answer = client.get("/projects", headers={**world.headers("artist"), "X-Request-ID": "trace-42"})
        fresh = client.get("/healthz")
    assert answer.headers["x-request-id"] == "trace-42"
    assert len(fresh.headers["x-request-id"]) == 32
    lines = [
        json.loads(record.getMessage()) for record in caplog.records if record.name == "bifrost.api.access"
    ]
    first = next(line for line in lines if line["request_id"] == "trace-42")
    assert first["status"] == 200
    assert first["path"] == "/projects"
    assert first["user_id"] == world.user_ids["artist"]


def test_lists_are_gzipped_when_accepted(client, world: World) -> None:
    headers = world.headers("admin")
    operations = [
        {"op": "create_shot", "sequence_id": world.a.sequence_id, "data": {"code": f"g{i}"}}
        for i in range(40)
    ]
    client.post(f"/projects/{world.a.project_id}/bulk", json={"operations": operations}, headers=headers)
    url = f"/projects/{world.a.project_id}/shots"
    zipped = client.get(url, headers={**headers, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    plain = client.get(url, headers={**headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()  # httpx decompressed it


def test_pagination_walks_every_row_once_in_id_order(client, world: World) -> None:
    headers = world.headers("admin")
    operations = [
        {"op": "create_shot", "sequence_id": world.a.sequence_id, "data": {"code": f"p{i:02}"}}
        for i in range(25)
    ]
    client.post(f"/projects/{world.a.project_id}/bulk", json={"operations": operations}, headers=headers)
    seen, cursor = [], None
    while True:
        params = {"limit": 7, **({"after": cursor} if cursor is not None else {})}
        page = client.get(f"/projects/{world.a.project_id}/shots", params=params, headers=headers).json()
        seen += [shot["id"] for shot in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 26
