"""Notes: review feedback on a version, a shot or an asset.

Clients only ever see notes shared with clients, and what a client writes is shared.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from bifrost_core.assets.repository import AssetRepository
from bifrost_core.errors import NotFound
from bifrost_core.events.service import record_created
from bifrost_core.projects.repository import ShotRepository
from bifrost_core.reviews.models import Note
from bifrost_core.reviews.repository import NoteRepository
from bifrost_core.reviews.schemas import NoteCreate
from bifrost_core.scope import Actor
from bifrost_core.users import permissions
from bifrost_core.versions.repository import VersionRepository

Target = Literal["version", "shot", "asset"]
_REPOSITORIES = {"version": VersionRepository, "shot": ShotRepository, "asset": AssetRepository}


def sees_internal(actor: Actor, project_id: int) -> bool:
    return permissions.allowed(actor, "notes.read_internal", project_id)


def create_note(session: Session, *, actor: Actor, target: Target, target_id: int, data: NoteCreate) -> Note:
    entity = _REPOSITORIES[target](session, actor).get(target_id)
    permissions.require(actor, "notes.write", entity.project_id)
    visibility = data.visibility if sees_internal(actor, entity.project_id) else "client"
    note = NoteRepository(session, actor).add(
        Note(
            project_id=entity.project_id,
            author_id=actor.user_id,
            body=data.body,
            visibility=visibility,
            **{f"{target}_id": target_id},
        )
    )
    record_created(
        session,
        actor=actor,
        entity_type="note",
        entity=note,
        project_id=note.project_id,
        payload={"target": target, "target_id": target_id, "visibility": visibility},
    )
    return note


def get_note(session: Session, *, actor: Actor, note_id: int) -> Note:
    note = NoteRepository(session, actor).get(note_id)
    permissions.require(actor, "notes.read_shared", note.project_id)
    if note.visibility != "client" and not sees_internal(actor, note.project_id):
        # Not shared with this reader: as invisible as another project's note.
        raise NotFound(f"note {note_id} not found")
    return note


def list_notes(
    session: Session,
    *,
    actor: Actor,
    target: Target,
    target_id: int,
    after: int | None = None,
    limit: int = 100,
) -> list[Note]:
    entity = _REPOSITORIES[target](session, actor).get(target_id)
    permissions.require(actor, "notes.read_shared", entity.project_id)
    filters: dict[str, object] = {f"{target}_id": target_id}
    if not sees_internal(actor, entity.project_id):
        filters["visibility"] = "client"
    return NoteRepository(session, actor).list(filters=filters, after=after, limit=limit)
