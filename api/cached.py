"""Hot entity reads through the cache (Redis or in-process), keyed by type and id.

An entry is `<generation>:<project id>:<json>`. The generation is read together with
the entry in one round trip; see `bifrost_core.cache.entities.generation_key`.
The project id lets a cached answer go through the same scope and role checks as an
uncached one: another project's id is still a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import Ctx
from api.metrics import cache_lookup
from bifrost_core.cache.entities import ENTITY_TTL, entity_key, generation_key
from bifrost_core.errors import NotFound
from bifrost_core.jsonbounds import dump_json


def read(
    ctx: Ctx,
    entity_type: str,
    entity_id: int,
    *,
    action: str,
    schema: type[BaseModel],
    load: Callable[[], Any],
) -> Response:
    if not ctx.state.entity_cache:
        entity = load()
        ctx.require(action, _project_id(entity_type, entity))
        return ctx.respond(schema.model_validate(entity))
    cache = ctx.state.cache
    key = entity_key(entity_type, entity_id)
    raw, generation = cache.get_many([key, generation_key(entity_type, entity_id)])
    generation = generation or b"0"
    if raw is not None:
        stored_generation, project_id, body = raw.split(b":", 2)
        if stored_generation == generation:
            if ctx.state.settings.metrics_enabled:
                cache_lookup(hit=True)
            if not ctx.actor.can_see(int(project_id)):
                raise NotFound(f"{entity_type} {entity_id} not found")
            ctx.require(action, int(project_id))
            return ctx.respond(body)
    if ctx.state.settings.metrics_enabled:
        cache_lookup(hit=False)
    entity = load()
    project_id = _project_id(entity_type, entity)
    ctx.require(action, project_id)
    body = dump_json(schema.model_validate(entity))
    if not ctx.on_replica:
        # A replica may not have replayed the change this generation stands for: stored under
        # it, an older copy would be served to everyone, the writer too.
        cache.set(key, b"%s:%d:%s" % (generation, project_id, body), ENTITY_TTL)
    return ctx.respond(body)


def _project_id(entity_type: str, entity: Any) -> int:
    return entity.id if entity_type == "project" else entity.project_id
