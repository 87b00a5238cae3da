"""Control characters in input: SQLite stores a NUL that PostgreSQL refuses, and none of them
prints. Every string field of every input schema refuses them alike; free text keeps tab,
newline and carriage return. The fields are found by walking the schema classes."""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from typing import Annotated, Any, Union

import pytest
from pydantic import ValidationError

import api
import bifrost_core
from bifrost_core.schemas import FREE_TEXT_FIELDS, InputSchema
from flows.registry import FLOWS
from tests.support.world import World


def _import_everything() -> None:
    for package in (bifrost_core, api):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    # The flows' request bodies are derived from their signatures on first use.
    for flow in FLOWS.values():
        flow.body_model()


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _string_shape(annotation: Any) -> str | None:
    """ "str" for a string field, "list" for a list of strings, None otherwise (dicts, numbers,
    literals, nested models: those check themselves)."""
    origin = typing.get_origin(annotation)
    if annotation is str:
        return "str"
    if origin is Annotated:
        return _string_shape(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        shapes = {_string_shape(arg) for arg in typing.get_args(annotation)} - {None}
        return shapes.pop() if shapes else None
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return "list" if args and _string_shape(args[0]) == "str" else None
    return None


_import_everything()
STRING_FIELDS = [
    (cls, name, shape)
    for cls in sorted(set(_subclasses(InputSchema)), key=lambda c: f"{c.__module__}.{c.__qualname__}")
    for name, field in cls.model_fields.items()
    if (shape := _string_shape(field.annotation))
]


def test_the_walk_finds_the_string_fields() -> None:
    names = {(cls.__name__, name) for cls, name, _ in STRING_FIELDS}
    # One of each kind, so the walk cannot silently find nothing.
    assert {("ShotCreate", "code"), ("ShotCreate", "description"), ("FileIn", "name")} <= names
    assert {("UserCreate", "username"), ("TokenCreate", "name"), ("PublishRunCreate", "files")} <= names
    assert ("ShotCreate", "meta") not in names  # dicts have their own type


def _errors_at(cls: type, name: str, value: object) -> list[str]:
    try:
        cls.model_validate({name: value})
    except ValidationError as exc:
        return [error["msg"] for error in exc.errors() if error["loc"][:1] == (name,)]
    return []


def _value(shape: str, text: str) -> object:
    return [text] if shape == "list" else text


@pytest.mark.parametrize(
    ("cls", "name", "shape"), STRING_FIELDS, ids=[f"{c.__name__}.{n}" for c, n, _ in STRING_FIELDS]
)
def test_every_string_field_refuses_control_characters(cls, name, shape) -> None:
    for control in ("\x00", "\x01", "\x1b", "\x1f"):
        assert _errors_at(cls, name, _value(shape, f"ab{control}cd")), repr(control)
    if name in FREE_TEXT_FIELDS:
        assert _errors_at(cls, name, _value(shape, "line one\r\n\tline two")) == []
    else:
        assert _errors_at(cls, name, _value(shape, "ab\ncd"))


CREATES = [
    ("/sequences/{sequence_id}/shots", {"code": "sh\x00020"}),
    ("/sequences/{sequence_id}/shots", {"code": "sh020", "description": "nul\x00byte"}),
    ("/projects/{project_id}/sequences", {"code": "sq020", "name": "a\x00b"}),
    ("/projects/{project_id}/assets", {"code": "prop", "asset_type": "prop", "name": "a\x00b"}),
    ("/projects", {"code": "NEW", "name": "a\x00b"}),
    ("/users", {"username": "ann", "name": "Ann\x00"}),
    ("/tokens", {"name": "nuke\x00"}),
    ("/shots/{shot_id}/notes", {"body": "nice\x07"}),
]


@pytest.mark.parametrize(("path", "body"), CREATES, ids=[path for path, _ in CREATES])
def test_a_nul_in_a_name_is_422_and_stores_nothing(client, world: World, path, body) -> None:
    headers = world.headers("admin")
    lists = [
        f"/projects/{world.a.project_id}/shots",
        f"/projects/{world.a.project_id}/sequences",
        f"/projects/{world.a.project_id}/assets",
        "/projects",
        "/users",
        "/tokens",
        f"/shots/{world.a.shot_id}/notes",
    ]
    before = [client.get(url, headers=headers).json() for url in lists]
    answer = client.post(path.format(**vars(world.a)), json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert [client.get(url, headers=headers).json() for url in lists] == before
