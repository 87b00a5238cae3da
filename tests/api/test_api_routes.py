"""Every route of the app, checked for authentication, project scope and admin-only access.

ROUTES is the table: a route missing from it (or an entry with no route) fails
`test_every_route_is_in_the_table`, so a new route cannot ship unchecked.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from tests.support.world import World

PUBLIC, ADMIN, SELF, SCOPED = "public", "admin", "self", "scoped"

# (method, path) -> (kind, body). SCOPED routes name a project's entity (in the path or
# the body): another project's token gets 404. ADMIN routes refuse non-admins with 403.
ROUTES: dict[tuple[str, str], tuple[str, Any]] = {
    ("GET", "/openapi.json"): (PUBLIC, None),
    ("GET", "/docs"): (PUBLIC, None),
    ("GET", "/docs/oauth2-redirect"): (PUBLIC, None),
    ("GET", "/redoc"): (PUBLIC, None),
    ("GET", "/healthz"): (PUBLIC, None),
    ("GET", "/readyz"): (PUBLIC, None),
    ("GET", "/metrics"): (PUBLIC, None),
    ("GET", "/projects"): (SELF, None),
    ("POST", "/projects"): (ADMIN, {"code": "NEW", "name": "New"}),
    ("GET", "/projects/{project_id}"): (SCOPED, None),
    ("PATCH", "/projects/{project_id}"): (SCOPED, {"name": "renamed"}),
    ("GET", "/projects/{project_id}/episodes"): (SCOPED, None),
    ("POST", "/projects/{project_id}/episodes"): (SCOPED, {"code": "ep9"}),
    ("GET", "/episodes/{episode_id}"): (SCOPED, None),
    ("PATCH", "/episodes/{episode_id}"): (SCOPED, {"name": "x"}),
    ("GET", "/projects/{project_id}/sequences"): (SCOPED, None),
    ("POST", "/projects/{project_id}/sequences"): (SCOPED, {"code": "sq9"}),
    ("GET", "/sequences/{sequence_id}"): (SCOPED, None),
    ("PATCH", "/sequences/{sequence_id}"): (SCOPED, {"name": "x"}),
    ("GET", "/projects/{project_id}/shots"): (SCOPED, None),
    ("POST", "/sequences/{sequence_id}/shots"): (SCOPED, {"code": "sh9"}),
    ("GET", "/shots/{shot_id}"): (SCOPED, None),
    ("PATCH", "/shots/{shot_id}"): (SCOPED, {"description": "x"}),
    ("GET", "/projects/{project_id}/asset-types"): (SCOPED, None),
    ("POST", "/projects/{project_id}/asset-types"): (SCOPED, {"code": "prop"}),
    ("GET", "/projects/{project_id}/assets"): (SCOPED, None),
    ("POST", "/projects/{project_id}/assets"): (SCOPED, {"code": "a9", "asset_type": "prop"}),
    ("GET", "/assets/{asset_id}"): (SCOPED, None),
    ("PATCH", "/assets/{asset_id}"): (SCOPED, {"name": "x"}),
    ("GET", "/projects/{project_id}/casting"): (SCOPED, None),
    ("POST", "/castings"): (SCOPED, {"shot_id": "{shot_id}", "asset_id": "{asset_id}"}),
    ("DELETE", "/castings/{casting_id}"): (SCOPED, None),
    ("GET", "/projects/{project_id}/task-types"): (SCOPED, None),
    ("POST", "/projects/{project_id}/task-types"): (SCOPED, {"code": "comp"}),
    ("GET", "/projects/{project_id}/tasks"): (SCOPED, None),
    ("POST", "/tasks"): (SCOPED, {"task_type": "comp", "shot_id": "{shot_id}"}),
    ("GET", "/tasks/{task_id}"): (SCOPED, None),
    ("PATCH", "/tasks/{task_id}"): (SCOPED, {"due_date": "2030-01-01"}),
    ("GET", "/projects/{project_id}/workflows/{kind}"): (SCOPED, None),
    (
        "PUT",
        "/projects/{project_id}/workflows/{kind}",
    ): (
        SCOPED,
        {
            "statuses": [
                {"code": "wtg", "name": "Waiting", "is_initial": True},
                # The world's task holds it: its version moved it there.
                {"code": "review", "name": "Pending review", "on_new_version": True},
            ]
        },
    ),
    ("GET", "/projects/{project_id}/versions"): (SCOPED, None),
    ("POST", "/versions"): (SCOPED, {"task_id": "{task_id}"}),
    ("GET", "/versions/{version_id}"): (SCOPED, None),
    ("PATCH", "/versions/{version_id}"): (SCOPED, {"comment": "x"}),
    ("GET", "/versions/{version_id}/representations"): (SCOPED, None),
    ("GET", "/representations/{representation_id}"): (SCOPED, None),
    ("GET", "/versions/{target_id}/notes"): (SCOPED, None),
    ("POST", "/versions/{target_id}/notes"): (SCOPED, {"body": "x"}),
    ("GET", "/shots/{target_id}/notes"): (SCOPED, None),
    ("POST", "/shots/{target_id}/notes"): (SCOPED, {"body": "x"}),
    ("GET", "/assets/{target_id}/notes"): (SCOPED, None),
    ("POST", "/assets/{target_id}/notes"): (SCOPED, {"body": "x"}),
    ("GET", "/notes/{note_id}"): (SCOPED, None),
    ("POST", "/notes/{note_id}/replies"): (SCOPED, {"body": "x"}),
    ("GET", "/projects/{project_id}/playlists"): (SCOPED, None),
    ("POST", "/projects/{project_id}/playlists"): (SCOPED, {"name": "client review"}),
    ("GET", "/playlists/{playlist_id}"): (SCOPED, None),
    ("PATCH", "/playlists/{playlist_id}"): (SCOPED, {"shared_with_clients": True}),
    ("POST", "/playlists/{playlist_id}/versions"): (SCOPED, {"version_ids": ["{version_id}"]}),
    ("DELETE", "/playlists/{playlist_id}/versions/{version_id}"): (SCOPED, None),
    ("POST", "/versions/{version_id}/approve"): (SCOPED, {}),
    ("POST", "/versions/{version_id}/request-changes"): (SCOPED, {"comment": "x"}),
    ("GET", "/versions/{version_id}/decisions"): (SCOPED, None),
    ("GET", "/users/me"): (SELF, None),
    ("GET", "/users"): (ADMIN, None),
    ("POST", "/users"): (ADMIN, {"username": "newbie"}),
    ("GET", "/users/{user_id}"): (ADMIN, None),
    ("PATCH", "/users/{user_id}"): (ADMIN, {"name": "x"}),
    ("POST", "/users/{user_id}/tokens"): (ADMIN, {}),
    ("GET", "/tokens"): (SELF, None),
    ("POST", "/tokens"): (SELF, {}),
    ("DELETE", "/tokens/{token_id}"): (SCOPED, None),
    ("GET", "/projects/{project_id}/memberships"): (SCOPED, None),
    ("PUT", "/projects/{project_id}/memberships"): (SCOPED, {"user_id": "{user_id}", "role": "artist"}),
    ("DELETE", "/memberships/{membership_id}"): (SCOPED, None),
    ("GET", "/events"): (SELF, None),
    # Every flow of the registry: called as ingest (see _ids).
    ("POST", "/projects/{project_id}/flows/{flow}/runs"): (
        SCOPED,
        {"source": "/deliveries/x", "dry_run": True},
    ),
    ("GET", "/projects/{project_id}/flow-runs"): (SCOPED, None),
    ("GET", "/flow-runs/{run_id}"): (SCOPED, None),
    ("POST", "/projects/{project_id}/renders"): (
        SCOPED,
        {"task_id": "{task_id}", "command": ["render", "--frame={first}"], "frames": "1-10"},
    ),
    ("GET", "/projects/{project_id}/renders"): (SCOPED, None),
    ("GET", "/renders/{render_id}"): (SCOPED, None),
    ("POST", "/renders/{render_id}/retry-failed"): (SCOPED, None),
    ("POST", "/renders/{render_id}/cancel"): (SCOPED, None),
    ("GET", "/storage/replicas"): (ADMIN, None),
    (
        "POST",
        "/projects/{project_id}/bulk",
    ): (SCOPED, {"operations": [{"op": "update_shot", "id": "{shot_id}", "data": {"description": "x"}}]}),
}


def app_routes(app) -> set[tuple[str, str]]:
    """The API's routes; the web interface's (/ui, cookie sessions) are checked in test_api_ui."""
    found = set()
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            if context.path.startswith("/ui"):
                continue
            for method in getattr(context, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, context.path))
    return found


def test_every_route_is_in_the_table(bifrost_env, database) -> None:
    routes = app_routes(create_app(database=database))
    assert sorted(routes - ROUTES.keys()) == [], "routes missing from the permission table"
    assert sorted(ROUTES.keys() - routes) == [], "table entries without a route"


def _ids(world: World, path: str) -> dict[str, Any]:
    a = world.a
    target = {"/versions": a.version_id, "/shots/": a.shot_id, "/assets/": a.asset_id}
    ids = {name: value for name, value in vars(a).items()}
    ids["target_id"] = next((v for prefix, v in target.items() if path.startswith(prefix)), 0)
    ids["kind"] = "task"
    ids["flow"] = "ingest"
    # Another user's token and user: not the caller's, whoever calls.
    ids["token_id"] = world.token_ids["artist"]
    ids["user_id"] = world.user_ids["artist"]
    return ids


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    return value


def _call(client, method: str, path: str, body: Any, world: World, headers: dict[str, str]):
    ids = _ids(world, path)
    url = path.format(**ids)
    return client.request(method, url, json=_fill(body, ids), headers=headers)


@pytest.mark.parametrize("auth", ["none", "garbage", "wrong-scheme"])
def test_no_valid_token_is_401_everywhere(make_client, world: World, auth: str) -> None:
    client = make_client(api_auth_failures=0)  # every route in turn: more bad tokens than allowed
    headers = {
        "none": {},
        "garbage": {"Authorization": "Bearer bft_not-a-token"},
        "wrong-scheme": {"Authorization": f"Basic {world.tokens['admin']}"},
    }[auth]
    for (method, path), (kind, body) in ROUTES.items():
        if kind == PUBLIC:
            continue
        answer = _call(client, method, path, body, world, headers)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthenticated"


def test_other_projects_ids_are_404(client, world: World) -> None:
    headers = world.headers("b_coordinator")
    for (method, path), (kind, body) in ROUTES.items():
        if kind != SCOPED:
            continue
        answer = _call(client, method, path, body, world, headers)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "not_found"


def test_admin_routes_refuse_everyone_else(client, world: World) -> None:
    for who in ("coordinator", "supervisor", "artist", "client", "service"):
        for (method, path), (kind, body) in ROUTES.items():
            if kind != ADMIN:
                continue
            answer = _call(client, method, path, body, world, world.headers(who))
            assert answer.status_code == 403, (who, method, path, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"


def test_admin_and_own_project_reach_every_route(client, world: World, monkeypatch) -> None:
    """The other side of the 404s and 403s: the same calls succeed for those allowed."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for (method, path), (kind, body) in ROUTES.items():
        who = "admin" if kind == ADMIN else "coordinator"
        if (method, path) == ("DELETE", "/tokens/{token_id}"):
            who = "admin"  # someone else's token: only an admin may revoke it
        answer = _call(client, method, path, body, world, world.headers(who))
        if "/flows/" in path or path == "/flow-runs/{run_id}" or (method, path[-8:]) == ("POST", "/renders"):
            # Past every check, these need a Prefect server (tests/api/test_api_flows.py and
            # test_api_render.py have one): flow runs, and a render submit's GPU hosts.
            assert answer.status_code == 503, (who, method, path, answer.text)
            assert answer.json()["error"]["code"] == "prefect_unavailable"
            continue
        assert answer.status_code < 300, (who, method, path, answer.text)
