"""The event log, read forward with an id cursor (`since`)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import CtxDep
from api.params import After, Limit, OptionalId, Page, rows_page
from bifrost_core.events.repository import EventRepository
from bifrost_core.events.schemas import EventRead
from bifrost_core.users.permissions import allowed

router = APIRouter()


@router.get("/events", response_model=Page[EventRead], tags=["events"])
def list_events(
    ctx: CtxDep, since: After = None, project_id: OptionalId = None, limit: Limit = 100
) -> Response:
    """Events after the `since` id, oldest first; poll with the last next_cursor."""
    actor = ctx.actor
    if not actor.is_admin:
        # Only the projects whose role may read events; studio-wide events stay with admins.
        roles = {pid: role for pid, role in actor.roles.items() if allowed(actor, "events.read", pid)}
        actor = replace(actor, roles=roles)
    if project_id is not None:
        ctx.project(project_id, "events.read")
    repository = EventRepository(ctx.session, actor)
    filters = {"project_id": project_id}
    return ctx.respond(rows_page(repository, EventRead, filters=filters, after=since or 0, limit=limit))
