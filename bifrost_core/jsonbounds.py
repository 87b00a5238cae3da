"""Free-form JSON a user writes (`meta`, a project's `config`, ...): bounded on the way in,
and never a failed answer on the way out.

`JsonObject` is the one type every free-form JSON input field uses. Its value is checked
when validated (so a 422 names the field and nothing is stored) for depth, serialised
size, number of keys, key length, NUL characters, unencodable strings and non-finite
numbers. `dump_json`/`jsonable` serialise answers; values stored before these limits
existed (nested deeper than pydantic's serialiser goes) are clipped, not a 500.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticSerializationError, core_schema, to_json

# Deep enough for any real document (a DCC's settings nest a handful of levels), shallow
# enough that every reader (pydantic's serialiser stops at 255 levels, PostgreSQL's and
# Python's parsers recurse) handles it with room to spare inside a response.
MAX_JSON_DEPTH = 32
# Meta rides along with every row of a list page: 1,000 rows of 64 KiB is already 64 MB.
MAX_JSON_BYTES = 64 * 1024
# A project's config is one row, read once per ingest or publish, and holds naming rules
# and path templates for many vendors: it gets more room.
MAX_CONFIG_BYTES = 256 * 1024
# Keys in all, at every level: bounds the work of reading, indexing and diffing a value.
MAX_JSON_KEYS = 1000
# Keys are names, not data.
MAX_JSON_KEY_LENGTH = 256
# Values stored before the limits existed are cut this deep when answered: twice the write
# limit leaves room for the envelope (page, items, row, nested models) around a field.
CLIP_DEPTH = 2 * MAX_JSON_DEPTH
CLIPPED = f"(nested deeper than {CLIP_DEPTH} levels: not shown)"


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Limits of one JSON field; used as `Annotated[dict[str, Any], JsonLimits(...)]`."""

    max_depth: int = MAX_JSON_DEPTH
    max_bytes: int = MAX_JSON_BYTES
    max_keys: int = MAX_JSON_KEYS
    max_key_length: int = MAX_JSON_KEY_LENGTH

    def check(self, value: Any) -> Any:
        """`value` if it is within the limits, else ValueError saying which limit."""
        keys = 0
        stack: list[tuple[Any, int, str]] = [(value, 1, "")]
        while stack:
            item, depth, where = stack.pop()
            if isinstance(item, dict):
                if depth > self.max_depth:
                    raise ValueError(f"nested more than {self.max_depth} levels deep{_at(where)}")
                keys += len(item)
                if keys > self.max_keys:
                    raise ValueError(f"more than {self.max_keys} keys in all")
                for key, child in item.items():
                    _check_key(key, where, self.max_key_length)
                    stack.append((child, depth + 1, f"{where}.{key}" if where else key))
            elif isinstance(item, list | tuple):
                if depth > self.max_depth:
                    raise ValueError(f"nested more than {self.max_depth} levels deep{_at(where)}")
                stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
            elif isinstance(item, str):
                _check_text(item, f"a string{_at(where)}")
            elif isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{item} is not a JSON number{_at(where)}")
        size = len(to_json(value))
        if size > self.max_bytes:
            raise ValueError(f"{size} bytes as JSON; the limit is {self.max_bytes // 1024} KiB")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        found.setdefault(
            "description",
            f"Free-form JSON: at most {self.max_depth} levels deep, {self.max_bytes // 1024} KiB, "
            f"{self.max_keys} keys of at most {self.max_key_length} characters; no NUL characters",
        )
        return found


def _at(where: str) -> str:
    return f" (at {where[:80]})" if where else ""


def _check_key(key: Any, where: str, max_length: int) -> None:
    if not isinstance(key, str):
        raise ValueError(f"key {key!r} is not a string{_at(where)}")
    if len(key) > max_length:
        raise ValueError(f"key {key[:40]!r}... is {len(key)} characters; the limit is {max_length}")
    _check_text(key, f"key {key[:40]!r}{_at(where)}")


def _check_text(text: str, what: str) -> None:
    # PostgreSQL's JSONB refuses \u0000, and a lone surrogate has no UTF-8 form to store or answer.
    if "\0" in text:
        raise ValueError(f"NUL character (\\u0000) in {what}")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError(f"unpaired surrogate in {what}") from None


JsonObject = Annotated[dict[str, Any], JsonLimits()]
ConfigObject = Annotated[dict[str, Any], JsonLimits(max_bytes=MAX_CONFIG_BYTES)]


def dump_json(body: Any) -> bytes:
    """`body` (a model or plain data) as JSON bytes, values nested too deep clipped."""
    try:
        return body.model_dump_json().encode() if isinstance(body, BaseModel) else to_json(body)
    except PydanticSerializationError:
        return to_json(clip(body))


def jsonable(body: BaseModel) -> Any:
    """A model as plain JSON data (`model_dump(mode="json")`), values nested too deep clipped."""
    try:
        return body.model_dump(mode="json")
    except ValueError:  # the serialiser's depth limit (a PydanticSerializationError is one too)
        return json.loads(to_json(clip(body)))


def clip(value: Any, depth: int = 0) -> Any:
    """`value` with every object or array nested deeper than CLIP_DEPTH replaced by CLIPPED."""
    if isinstance(value, BaseModel):
        return {name: clip(getattr(value, name), depth + 1) for name in type(value).model_fields}
    if isinstance(value, dict | list | tuple) and depth >= CLIP_DEPTH:
        return CLIPPED
    if isinstance(value, dict):
        return {key: clip(child, depth + 1) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [clip(child, depth + 1) for child in value]
    return value
