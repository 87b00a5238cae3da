"""Free-form JSON in requests is bounded (issue 10, defect 4).

The cases are generated from the app's OpenAPI schema: every write operation, every
free-form object in its request body (an object without fixed properties, at any depth,
through arrays and the bulk route's operations) gets a value too deep, too large, with too
many keys and with NUL characters. Each must be a 422 naming the field, and nothing may be
stored. A new route or field is covered without a line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.jsonbounds import CLIPPED, MAX_CONFIG_BYTES, MAX_JSON_DEPTH, MAX_JSON_KEYS
from bifrost_core.projects.models import Shot
from cli.main import app as cli_app
from tests.support.world import ROLES, World

WRITE_METHODS = ("post", "put", "patch")


@dataclass(frozen=True)
class Variant:
    """A step into one member of a discriminated union (the bulk route's `op`)."""

    field: str
    value: str


def _openapi() -> dict[str, Any]:
    # The schema is the same for every app; this one never touches its (unopened) database.
    app = create_app(load_settings(), database=Database("sqlite://"), cache=LocalCache())
    with TestClient(app):
        return app.openapi()


OPENAPI = _openapi()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [_resolve(s) for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null"]


def _free_form(schema: dict[str, Any], path: tuple = ()) -> list[tuple]:
    """Paths of the free-form objects in `schema`: objects with no fixed properties."""
    schema = _resolve(schema)
    found: list[tuple] = []
    if "oneOf" in schema and "discriminator" in schema:
        field = schema["discriminator"]["propertyName"]
        for value, ref in sorted(schema["discriminator"]["mapping"].items()):
            found += _free_form({"$ref": ref}, (*path, Variant(field, value)))
    else:
        for option in _options(schema):
            found += _free_form(option, path)
    if schema.get("type") == "object":
        if "properties" in schema:
            for name, sub in schema["properties"].items():
                found += _free_form(sub, (*path, name))
        else:
            found.append(path)
    if schema.get("type") == "array":
        found += _free_form(schema["items"], (*path, 0))
    return found


def _cases() -> list:
    cases = []
    for route, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if method in WRITE_METHODS and body:
                for path in _free_form(body["schema"]):
                    label = ".".join(str(p.value if isinstance(p, Variant) else p) for p in path)
                    cases.append(pytest.param(method, route, path, id=f"{method} {route} {label}"))
    return cases


CASES = _cases()


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# What every free-form field must refuse: each is within reach of the 10 MiB body limit.
HOSTILE = {
    "too deep": _deep(MAX_JSON_DEPTH + 1),
    "too large": {"a": "x" * (MAX_CONFIG_BYTES + 1)},
    "too many keys": {f"k{i}": "x" for i in range(MAX_JSON_KEYS + 1)},
    "NUL in a key": {"a\u0000": "x"},
    "NUL in a value": {"a": "x\u0000"},
}


class Example:
    """Minimal valid request bodies, built from the schema, with ids from the world."""

    STRINGS = {"code": "zz1", "asset_type": "prop", "blob_hash": "ab" * 32, "task": "anim", "body": "x"}

    def __init__(self, world: World) -> None:
        ids = vars(world.a)
        self.ints = {name: ids[name] for name in ("task_id", "sequence_id", "shot_id", "asset_id")}
        # The id an update operation of the bulk route names.
        self.op_ids = {f"update_{kind}": ids[f"{kind}_id"] for kind in ("sequence", "shot", "asset", "task")}

    def value(self, schema: dict[str, Any], name: str | None = None) -> Any:
        schema = _resolve(schema)
        options = _options(schema)
        if options:
            return self.value(options[0], name)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object":
            return self.object(schema)
        if kind == "array":
            return [self.value(schema["items"], name)] * max(schema.get("minItems", 0), 1)
        if kind == "integer":
            return self.ints.get(name or "", 1)
        if kind == "number":
            return 1
        if kind == "boolean":
            return False
        return self.STRINGS.get(name or "", "x")

    def object(self, schema: dict[str, Any]) -> dict[str, Any]:
        properties = schema.get("properties", {})
        found = {name: self.value(properties[name], name) for name in schema.get("required", [])}
        if "id" in found and found.get("op") in self.op_ids:
            found["id"] = self.op_ids[found["op"]]
        return found

    def body(self, schema: dict[str, Any], path: tuple, bad: Any) -> Any:
        """A valid body but for `bad` at `path`."""
        schema = _resolve(schema)
        if not path:
            return bad
        head, rest = path[0], path[1:]
        if isinstance(head, Variant):
            ref = schema["discriminator"]["mapping"][head.value]
            return self.body({"$ref": ref}, rest, bad)
        options = _options(schema)
        if options:
            return self.body(options[0], path, bad)
        if isinstance(head, int):
            return [self.body(schema["items"], rest, bad)]
        found = self.object(schema)
        found[head] = self.body(schema["properties"][head], rest, bad)
        return found


def _snapshot(client: TestClient, world: World, method: str, url: str) -> list[Any]:
    """What a refused write must leave as it was: the event log (every write records an
    event) and, for an update, the resource itself."""
    headers = world.headers("admin")
    seen = [client.get("/events?limit=1000", headers=headers).json()]
    if method == "patch":
        seen.append(client.get(url, headers=headers).json())
    return seen


def test_the_schema_has_free_form_fields_to_check() -> None:
    # The generator must find the known fields (and so, a future one like them).
    labels = {case.id for case in CASES}
    for expected in (
        "patch /shots/{shot_id} meta",
        "patch /projects/{project_id} config",
        "patch /projects/{project_id} storage_tiers",
        "post /versions representations.0.meta",
        "post /projects/{project_id}/bulk operations.0.update_shot.data.meta",
        "post /projects/{project_id}/flows/publish/runs meta",
    ):
        assert expected in labels


@pytest.mark.parametrize(("method", "route", "path"), CASES)
def test_every_free_form_field_refuses_unbounded_json(client, world: World, method, route, path) -> None:
    schema = OPENAPI["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"]
    url = route.format(**{**vars(world.a), "target_id": world.a.shot_id})
    field = [p for p in path if isinstance(p, str)][-1]
    example = Example(world)
    before = _snapshot(client, world, method, url)
    for case, bad in HOSTILE.items():
        body = example.body(schema, path, bad)
        if route.endswith("/bulk"):
            # The whole bulk is refused, the good operation before the bad one too.
            good = {"op": "create_shot", "sequence_id": world.a.sequence_id, "data": {"code": "fine1"}}
            body["operations"].insert(0, good)
        answer = client.request(method.upper(), url, json=body, headers=world.headers("admin"))
        assert answer.status_code == 422, f"{case}: {answer.status_code} {answer.text[:300]}"
        error = answer.json()["error"]
        assert error["code"] == "invalid_input"
        # One error, at the field: the rest of the body was valid.
        assert len(error["details"]["errors"]) == 1, (case, error)
        assert field in error["details"]["errors"][0]["loc"], (case, error)
        assert _snapshot(client, world, method, url) == before, case


def test_limits_are_named_in_the_message(client, world: World) -> None:
    url, headers = f"/shots/{world.a.shot_id}", world.headers("coordinator")
    messages = {
        case: client.patch(url, json={"meta": bad}, headers=headers).json()["error"]["message"]
        for case, bad in HOSTILE.items()
    }
    assert messages["too deep"].startswith(f"body.meta: nested more than {MAX_JSON_DEPTH} levels deep")
    assert messages["too large"].startswith("body.meta: ") and "the limit is 64 KiB" in messages["too large"]
    assert messages["too many keys"] == f"body.meta: more than {MAX_JSON_KEYS} keys in all"
    assert messages["NUL in a key"].startswith("body.meta: NUL character")
    # A project's config has more room than meta, and says so.
    big = {"notes": "x" * (100 * 1024)}
    assert client.patch(f"/projects/{world.a.project_id}", json={"config": big}, headers=headers).is_success
    assert client.patch(url, json={"meta": big}, headers=headers).status_code == 422


# --------------------------------------------------------------------------- defect 4 itself


def test_deep_meta_is_refused_and_lists_answer_for_every_role(client, world: World) -> None:
    """The reproduction: meta nested 253 levels was stored (PATCH and bulk: 200), after
    which the shot list answered 500 for every role."""
    deep = _deep(253)
    admin = world.headers("admin")
    patched = client.patch(f"/shots/{world.a.shot_id}", json={"meta": deep}, headers=admin)
    assert patched.status_code == 422, patched.text
    operation = {"op": "update_shot", "id": world.a.shot_id, "data": {"meta": deep}}
    bulk_url = f"/projects/{world.a.project_id}/bulk"
    bulk = client.post(bulk_url, json={"operations": [operation]}, headers=admin)
    assert bulk.status_code == 422, bulk.text
    for who in ("admin", *ROLES):
        listed = client.get(f"/projects/{world.a.project_id}/shots", headers=world.headers(who))
        assert listed.status_code == 200, (who, listed.text)
        assert [shot["meta"] for shot in listed.json()["items"]] == [{}]


def test_values_stored_before_the_limits_are_answered_clipped(
    client, world: World, database: Database, monkeypatch, tmp_path
) -> None:
    # Written past the schemas, as the API did before the limits existed (deep enough that
    # even one shot alone is past the serialiser's 255 levels).
    with UnitOfWork(database) as uow:
        uow.session.get(Shot, world.a.shot_id).meta = _deep(300)
        uow.commit()
    admin = world.headers("admin")

    def clipped_depth(meta: Any) -> int:
        depth = 0
        while isinstance(meta, dict) and meta:
            meta, depth = meta["a"], depth + 1
        assert meta == CLIPPED
        return depth

    for who in ("admin", *ROLES):
        listed = client.get(f"/projects/{world.a.project_id}/shots", headers=world.headers(who))
        assert listed.status_code == 200, (who, listed.text)
        assert clipped_depth(listed.json()["items"][0]["meta"]) > MAX_JSON_DEPTH
    for _ in range(2):  # uncached, then from the cache
        shown = client.get(f"/shots/{world.a.shot_id}", headers=admin)
        assert shown.status_code == 200
        assert clipped_depth(shown.json()["meta"]) > MAX_JSON_DEPTH
    # Changing another field still answers (the stored meta is kept, not clipped).
    changed = client.patch(f"/shots/{world.a.shot_id}", json={"description": "ok"}, headers=admin)
    assert changed.status_code == 200, changed.text
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(Shot.meta).where(Shot.id == world.a.shot_id)) == _deep(300)

    # `bifrost shot list --json` failed on the same row.
    monkeypatch.setenv("BIFROST_DATABASE_URL", database.url)
    monkeypatch.setenv("BIFROST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BIFROST_TOKEN", world.tokens["admin"])  # the CLI acts as a named user
    result = CliRunner().invoke(cli_app, ["shot", "list", "PRJA", "--json"])
    assert result.exit_code == 0, result.output
    assert '"meta"' in result.output
    assert CliRunner().invoke(cli_app, ["shot", "show", "PRJA", "sq010", "sh010"]).exit_code == 0
