"""Every input schema bounds its free-form JSON, and answers never fail on stored JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import api.app  # noqa: F401  (imports every router, so their input models are defined)
import bifrost_core.ingest.schemas  # noqa: F401
from bifrost_core.jsonbounds import CLIP_DEPTH, CLIPPED, MAX_JSON_DEPTH, JsonLimits, clip, dump_json, jsonable
from bifrost_core.schemas import InputSchema


def _input_models() -> list[type[BaseModel]]:
    found, todo = [], [InputSchema]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def _unbounded(node: Any, where: str) -> list[str]:
    """Places in a pydantic core schema that take free-form or unbounded mappings: a `dict`
    or `any` schema outside a JsonLimits validator, or a mapping without a size limit."""
    if isinstance(node, list):
        return [hit for i, item in enumerate(node) for hit in _unbounded(item, f"{where}[{i}]")]
    if not isinstance(node, dict):
        return []
    function = node.get("function", {}).get("function") if node.get("type") == "function-after" else None
    if isinstance(getattr(function, "__self__", None), JsonLimits):
        return []
    if node.get("type") == "any":
        return [where]
    if node.get("type") == "dict":
        bounded_strings = all(
            node.get(part, {}).get("type") == "str" and "max_length" in node[part]
            for part in ("keys_schema", "values_schema")
        )
        if "max_length" not in node or not bounded_strings:
            return [where]
    inner = (item for item in node.items() if item[0] != "metadata")
    return [hit for key, value in inner for hit in _unbounded(value, f"{where}.{key}")]


def test_every_free_form_input_field_is_bounded() -> None:
    models = _input_models()
    assert len(models) > 30  # the walk sees the routers' and the flows' models too
    unbounded = [
        hit for model in models for hit in _unbounded(model.__pydantic_core_schema__, model.__qualname__)
    ]
    assert unbounded == [], "use bifrost_core.jsonbounds.JsonObject for free-form JSON input"


class _Careless(BaseModel):  # not an InputSchema: the test above would find it
    extra: dict[str, Any] = {}
    tiers: dict[str, str] = {}
    anything: list[Any] = []


def test_the_walk_finds_unbounded_fields() -> None:
    hits = _unbounded(_Careless.__pydantic_core_schema__, "Careless")
    assert len(hits) == 3
    assert all(f".{name}." in hit for name, hit in zip(("extra", "tiers", "anything"), hits, strict=True))


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_deep(MAX_JSON_DEPTH + 1), "nested more than 32 levels deep"),
        ({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "nested more than 32"),
        ({"a": float("nan")}, "nan is not a JSON number"),
        ({"a": float("inf")}, "inf is not a JSON number"),
        ({"a": "\ud800"}, "unpaired surrogate"),
        ({"\ud800": 1}, "unpaired surrogate"),
        ({"k" * 257: 1}, "is 257 characters; the limit is 256"),
        ({"a": {"b\x00": 1}}, "NUL character"),
        ({"a": ["x", "y\x00"]}, r"NUL character (\u0000) in a string (at a[1])"),
    ],
)
def test_limits(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        JsonLimits().check(value)
    assert message in str(refused.value)


def test_within_limits_is_unchanged() -> None:
    value = {"a": _deep(MAX_JSON_DEPTH - 1), "b": [1, 2.5, None, True, "é"], "c": "x" * 60_000}
    assert JsonLimits().check(value) is value


class _Stored(BaseModel):
    meta: dict[str, Any]


def test_answers_clip_what_the_serialiser_cannot_nest() -> None:
    shot = _Stored(meta=_deep(300))
    with pytest.raises(ValueError):
        shot.model_dump_json()
    assert b"not shown" in dump_json(shot)
    shown = jsonable(shot)["meta"]
    depth = 0
    while isinstance(shown, dict):
        shown, depth = shown["a"], depth + 1
    assert shown == CLIPPED
    assert depth == CLIP_DEPTH - 1  # the model is the first level
    # What fits is answered whole.
    assert clip({"a": _deep(10)}) == {"a": _deep(10)}
    assert dump_json({"items": [_deep(10)]}) == dump_json({"items": [clip(_deep(10))]})
