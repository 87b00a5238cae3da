"""Property-based: schemathesis generates requests from the app's own OpenAPI schema, first
operation by operation, then as chains of calls (its stateful phase: POST /projects, then
POST /projects/{project_id}/sequences with the id it answered, then the shots of that
sequence, ...). The chains follow OpenAPI links: those schemathesis infers from the schema
(response fields such as `id` matched to path parameters), and those `_with_links` adds to
the copy of the schema loaded here for the pairs it does not infer.

All of it runs against one database per backend. Whatever it sends (with a valid admin token),
the app must not answer 5xx, and every answer must match the documented status codes, content
types and schemas. And nothing it managed to store may be unservable: afterwards every list
(all its pages) and every item read reachable from them answers 200, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.schemas import TokenCreate, UserCreate
from tests.support.world import build_world

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# In-process calls; generous, since a flow run is created on a real Prefect server.
TIMEOUT = 60
ROUNDS = 3
CHAIN_SETTINGS = settings(
    max_examples=10,
    stateful_step_count=8,
    phases=[Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _schema_only_app():
    # The schema is the same for every app; this one never touches its (unopened) database.
    app = create_app(load_settings(), database=Database("sqlite://"), cache=LocalCache())
    with TestClient(app):  # run start-up and shut-down, so nothing stays subscribed
        pass
    app.openapi_schema = _with_links(app.openapi())
    return app


def _with_links(spec: dict) -> dict:
    """Add the links from each create to what uses its id that schemathesis does not infer:
    the operations under what it made (POST /projects/{project_id}/assets -> GET, PATCH
    /assets/{asset_id} and /assets/{target_id}/notes; PUT .../memberships -> DELETE
    /memberships/{membership_id}) and the bodies that name it (POST /tasks -> POST /versions
    with that task_id)."""
    paths = spec["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            response = operation["responses"].get("201" if method == "post" else "200")
            if method not in ("post", "put") or response is None:
                continue
            made = _singular(path.rstrip("/").rsplit("/", 1)[-1])
            links = response.setdefault("links", {})
            for target_path, targets in paths.items():
                parts = target_path.strip("/").split("/")
                # /assets/{asset_id}/..., /assets/{target_id}/notes: operations on what was made
                param = parts[1][1:-1] if len(parts) > 1 and _singular(parts[0]) == made else None
                for target_method, target in targets.items():
                    reference = f"#/paths/{target_path.replace('/', '~1')}/{target_method}"
                    if param in (f"{made}_id", "target_id"):
                        link = {"parameters": {f"path.{param}": "$response.body#/id"}}
                    elif f"{made}_id" in _body_properties(spec, target):
                        link = {"requestBody": {f"{made}_id": "$response.body#/id"}}
                    else:
                        continue
                    links.setdefault(
                        f"{made}_to_{target_method}_{len(links)}", {"operationRef": reference, **link}
                    )
    return spec


def _body_properties(spec: dict, operation: dict) -> dict:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema.get("properties", {})


def _singular(word: str) -> str:
    word = word.replace("-", "_")
    return word[:-1] if word.endswith("s") else word


schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_only_app())


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefect_api: str):
    """One database per backend for the whole module, with the tests' world in it: every
    operation's examples and the chains add to it, and the last test reads all of it back."""
    home = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), home / "bifrost.db")
        database = Database(f"sqlite:///{home / 'bifrost.db'}")
    else:
        database = Database(request.getfixturevalue("make_pg_database")())
        migrate.upgrade(database)
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("BIFROST_") and not name.startswith(("BIFROST_TEST_", "BIFROST_REQUIRE")):
                env.delenv(name)
        env.setenv("BIFROST_HOME", str(home))
        # A real Prefect server, so the flow routes answer for real (not 503) too.
        env.setenv("PREFECT_API_URL", prefect_api)
        world = build_world(database)
        app = create_app(load_settings(), database=database, cache=LocalCache())
        with TestClient(app):
            yield app, database, world
    database.dispose()


@pytest.fixture
def admin(fuzzed) -> dict[str, str]:
    """A new admin and token for each test: the fuzzer may have revoked or deactivated the last."""
    _app, database, _world = fuzzed
    with UnitOfWork(database) as uow:
        user = users.create_user(
            uow.session, actor=SYSTEM, data=UserCreate(username=f"fuzz{uuid.uuid4().hex[:12]}", is_admin=True)
        )
        issued = users.create_token(uow.session, actor=SYSTEM, user_id=user.id, data=TokenCreate())
        uow.commit()
    return {"Authorization": f"Bearer {issued.token}"}


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, fuzzed, admin) -> None:
    case.call_and_validate(app=fuzzed[0], headers=admin, checks=CHECKS, timeout=TIMEOUT)


def test_chains_of_calls_conform(fuzzed, admin) -> None:
    app = fuzzed[0]
    failures: list[str] = []
    steps = [0]

    class Chains(schema.as_state_machine()):
        def get_call_kwargs(self, case) -> dict[str, Any]:
            return {"app": app, "headers": admin, "timeout": TIMEOUT}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            # Collected, not raised: Hypothesis would replay a failing chain against a database
            # the first run has changed (a code taken, an id gone), which it reports as flaky.
            steps[0] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:
                failures.append(f"{case.as_curl_command(headers=admin)}\n{exc}")

    # The main create -> read pairs are among the links (inferred or added above).
    assert {
        ("POST /projects", "GET /projects/{project_id}"),
        ("POST /projects/{project_id}/sequences", "GET /sequences/{sequence_id}"),
        ("POST /sequences/{sequence_id}/shots", "GET /shots/{shot_id}"),
        ("POST /projects/{project_id}/assets", "GET /assets/{asset_id}"),
        ("POST /tasks", "GET /tasks/{task_id}"),
        ("POST /tasks", "POST /versions"),
        ("POST /versions", "GET /versions/{version_id}"),
        ("POST /versions", "GET /representations/{representation_id}"),
        ("POST /users", "GET /users/{user_id}"),
        ("POST /tokens", "DELETE /tokens/{token_id}"),
    } <= _links()
    # Each chain runs on what the earlier ones stored, so Hypothesis may find a chain it drew
    # before now takes another turn (a code already taken) and stop the round as "flaky"; like
    # schemathesis's own runner, take that as the end of a round, not a failure, and start another.
    for _ in range(ROUNDS):
        with contextlib.suppress(Flaky):
            Chains.run(settings=CHAIN_SETTINGS)
    assert not failures, "\n\n".join(failures[:5])
    assert steps[0] >= 30  # the rounds did not all stop at once


def test_everything_stored_can_be_read_back(fuzzed, admin) -> None:
    """Last (pytest keeps the file's order within each database): crawl every GET route,
    filling path parameters with the ids the lists and items answered and paging every list
    to its end. Whatever the fuzzing stored must be served: every answer is 200."""
    app = fuzzed[0]
    client = TestClient(app)
    client.headers.update(admin)
    routes = {
        path: operation.get("parameters", [])
        for path, operations in app.openapi()["paths"].items()
        if (operation := operations.get("get")) and "operations" not in operation.get("tags", [])
    }
    values: dict[str, set] = {}
    read: set[str] = set()
    reached: set[str] = set()
    failures: list[str] = []
    while True:
        urls = {(url, path) for path, params in routes.items() for url in _expand(path, params, values)}
        urls = {(url, path) for url, path in urls if url not in read}
        if not urls:
            break
        for url, path in sorted(urls):
            read.add(url)
            reached.add(path)
            paged = any(param["name"] == "after" for param in routes[path])
            for answer in _pages(client, url, paged):
                if answer.status_code == 200:
                    _collect(answer.json(), _resource(path), values)
                elif not (path == "/flow-runs/{run_id}" and answer.status_code == 404):
                    failures.append(f"GET {url}: {answer.status_code} {answer.text[:300]}")
                # else: a run the database records and Prefect no longer knows (the world makes one up)
    assert not failures, "\n".join(failures)
    # The world holds one of everything, so the crawl reached every route.
    assert reached == set(routes)


def _links() -> set[tuple[str, str]]:
    """(source, target) operation of every link in the schema, once the state machine has
    added the ones schemathesis infers."""
    found = set()
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    target_path, target_method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
                    target = f"{target_method.upper()} {target_path.replace('~1', '/')}"
                    found.add((f"{method.upper()} {path}", target))
    return found


def _pages(client: TestClient, url: str, paged: bool):
    if not paged:
        yield client.get(url)
        return
    answer = client.get(url, params={"limit": 1000})
    yield answer
    while answer.status_code == 200 and (cursor := answer.json().get("next_cursor")) is not None:
        answer = client.get(url, params={"limit": 1000, "after": cursor})
        yield answer


def _expand(path: str, params: list[dict], values: dict[str, set]) -> list[str]:
    urls = [path]
    for param in params:
        if param["in"] != "path":
            continue
        name = param["name"]
        choices = param["schema"].get("enum") or sorted(values.get(_value_key(path, name), ()), key=str)
        urls = [url.replace(f"{{{name}}}", str(choice)) for url in urls for choice in choices]
    return urls


def _value_key(path: str, name: str) -> str:
    # /shots/{target_id}/notes: a target is named by the segment before it.
    if name == "target_id":
        return f"{_singular(path.split('/{target_id}')[0].rsplit('/', 1)[-1])}_id"
    return name


def _resource(path: str) -> str:
    """The kind of row a route answers: /projects/{project_id}/shots and /shots/{shot_id}: shot."""
    words = [part for part in path.split("/") if part and not part.startswith("{")]
    return "user" if words[-1] == "me" else _singular(words[-1])


def _collect(body: Any, resource: str, values: dict[str, set]) -> None:
    """Ids by the path parameter they fill: a row's `id` as `<resource>_id`, and every other
    `*_id` field under its own name; nested lists of rows are resources of their own."""
    if isinstance(body, list):
        for item in body:
            _collect(item, resource, values)
        return
    if not isinstance(body, dict):
        return
    for key, value in body.items():
        if key == "items":
            _collect(value, resource, values)
        elif key == "id" and value is not None:
            values.setdefault(f"{resource}_id", set()).add(value)
        elif key.endswith("_id") and isinstance(value, int | str) and not isinstance(value, bool):
            values.setdefault(key, set()).add(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            _collect(value, _singular(key), values)
