"""Conventions every route keeps: unknown query parameters are refused, lists filter by code,
and the documentation pages need no internet."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from tests.support.world import World


def _api_routes(database) -> list[tuple[str, str]]:
    """(method, path) of every API route (the documentation pages are not: they take no
    parameters at all; the web interface's pages answer in HTML: tests/api/test_api_ui.py)."""
    found = []
    for route in create_app(database=database).routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            if hasattr(context, "dependant") and not context.path.startswith("/ui"):
                found += [(method, context.path) for method in context.methods if method != "HEAD"]
    return sorted(found)


def test_an_unknown_query_parameter_is_refused_on_every_route(client, world: World, database) -> None:
    routes = _api_routes(database)
    assert len(routes) > 50  # the app's table, not a handful
    for method, path in routes:
        url = re.sub(r"\{kind\}", "task", path)
        url = re.sub(r"\{[a-z_]+\}", "1", url)
        answer = client.request(method, url, params={"no_such_filter": "x"}, headers=world.headers("admin"))
        assert answer.status_code == 422, (method, path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_input", (method, path)
        assert error["message"] == "query.no_such_filter: unknown query parameter", (method, path)


def test_declared_query_parameters_are_still_accepted(client, world: World) -> None:
    headers = world.headers("admin")
    answer = client.get(f"/projects/{world.a.project_id}/shots", params={"limit": 5}, headers=headers)
    assert answer.status_code == 200
    answer = client.get("/events", params={"since": 0, "project_id": world.a.project_id}, headers=headers)
    assert answer.status_code == 200


def _codes(client, world: World, path: str, field: str, value: str) -> list[str]:
    answer = client.get(path, params={field: value}, headers=world.headers("coordinator"))
    assert answer.status_code == 200, answer.text
    return [item[field] for item in answer.json()["items"]]


@pytest.mark.parametrize("asked", ["sh020", "SH020"])
def test_lists_filter_by_code_in_any_case(client, world: World, asked: str) -> None:
    a, admin = world.a, world.headers("admin")
    made = [
        client.post(f"/sequences/{a.sequence_id}/shots", json={"code": "sh020"}, headers=admin),
        client.post(f"/projects/{a.project_id}/sequences", json={"code": "sq020"}, headers=admin),
        client.post(
            f"/projects/{a.project_id}/assets", json={"code": "sh020", "asset_type": "char"}, headers=admin
        ),
        client.post("/tasks", json={"task_type": "sh020", "shot_id": a.shot_id}, headers=admin),
    ]
    assert [answer.status_code for answer in made] == [201] * 4
    project = f"/projects/{a.project_id}"
    assert _codes(client, world, f"{project}/shots", "code", asked) == ["sh020"]
    sequence = asked.translate(str.maketrans("hH", "qQ"))  # sh020 -> sq020, SH020 -> SQ020
    assert _codes(client, world, f"{project}/sequences", "code", sequence) == ["sq020"]
    assert _codes(client, world, f"{project}/assets", "code", asked) == ["sh020"]
    assert _codes(client, world, f"{project}/tasks", "name", asked) == ["sh020"]
    assert _codes(client, world, "/projects", "code", "prja") == ["PRJA"]
    # Exact, not a prefix or a pattern; and still only the caller's projects.
    assert _codes(client, world, f"{project}/shots", "code", "sh0") == []
    assert _codes(client, world, f"{project}/shots", "code", "sh_20") == []
    assert _codes(client, world, "/projects", "code", "PRJB") == []


@pytest.mark.parametrize(("page", "needs"), [("/docs", "swagger-ui"), ("/redoc", "redoc")])
def test_documentation_pages_load_nothing_from_elsewhere(client, page: str, needs: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    html = answer.text
    # Every script, style and icon the page loads comes from this app.
    assert not re.search(r"(src|href)=[\"'](https?:)?//", html), html
    assert "cdn" not in html.lower()
    loaded = re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", html)
    assert any(needs in url for url in loaded)
    for url in loaded:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    missing = client.get("/docs/assets/no-such-file.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
