"""Review sessions: notes, replies, playlists and decisions.

Clients only ever see notes shared with clients, and what a client writes is shared; they see
only the playlists shared with clients. Both follow one rule: `notes.read_internal` in the
project's role table. A decision moves the version and its task along the project's status
workflows, or nothing moves at all.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import func
from sqlalchemy.orm import Session

from bifrost_core.assets.repository import AssetRepository
from bifrost_core.db.repository import valid_id
from bifrost_core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from bifrost_core.events.service import record, record_created, record_updated
from bifrost_core.projects.repository import ProjectRepository, ShotRepository
from bifrost_core.reviews.models import Decision, Note, Playlist, PlaylistItem
from bifrost_core.reviews.repository import (
    DecisionRepository,
    NoteRepository,
    PlaylistRepository,
    frame_range,
)
from bifrost_core.reviews.schemas import (
    DecisionCreate,
    DecisionKind,
    NoteCreate,
    PlaylistAdd,
    PlaylistCreate,
    PlaylistUpdate,
    ReplyCreate,
)
from bifrost_core.schemas import changes
from bifrost_core.scope import Actor
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.users import permissions
from bifrost_core.versions.models import Version
from bifrost_core.versions.repository import VersionRepository
from bifrost_core.workflow import service as workflow

Target = Literal["version", "shot", "asset"]
_REPOSITORIES = {"version": VersionRepository, "shot": ShotRepository, "asset": AssetRepository}

# Where each decision takes the version and its task, in the default workflows' words.
DECISION_STATUSES: dict[str, tuple[str, str]] = {
    "approve": ("approved", "approved"),
    "request_changes": ("changes_requested", "retake"),
}


def sees_internal(actor: Actor, project_id: int) -> bool:
    return permissions.allowed(actor, "notes.read_internal", project_id)


# Notes and replies.


def create_note(session: Session, *, actor: Actor, target: Target, target_id: int, data: NoteCreate) -> Note:
    entity = _REPOSITORIES[target](session, actor).get(target_id)
    permissions.require(actor, "notes.write", entity.project_id)
    frames: dict[str, object] = {}
    if data.frame_in is not None:
        if target != "version":
            raise InvalidInput(f"frames are for notes on versions, not on a {target}")
        frame_out = data.frame_out if data.frame_out is not None else data.frame_in
        _check_frames(session, entity, data.frame_in, frame_out)
        frames = {"frame_in": data.frame_in, "frame_out": frame_out}
        if data.drawing is not None:
            frames["drawing"] = data.drawing.model_dump(mode="json")
    return _add_note(
        session,
        actor=actor,
        project_id=entity.project_id,
        target=target,
        target_id=target_id,
        body=data.body,
        visibility=data.visibility,
        **frames,
    )


def _check_frames(session: Session, version: Version, frame_in: int, frame_out: int) -> None:
    span = frame_range(session, version.id)
    if span is None:
        raise InvalidInput(f"version {version.id} has no frames: a note on it cannot name one")
    if frame_in < span[0] or frame_out > span[1]:
        asked = str(frame_in) if frame_in == frame_out else f"{frame_in}-{frame_out}"
        raise InvalidInput(f"frame {asked} is outside version {version.id}'s frames {span[0]}-{span[1]}")


def _add_note(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    target: str,
    target_id: int,
    body: str,
    visibility: str,
    **fields: object,
) -> Note:
    visibility = visibility if sees_internal(actor, project_id) else "client"
    note = NoteRepository(session, actor).add(
        Note(
            project_id=project_id,
            author_id=actor.user_id,
            body=body,
            visibility=visibility,
            **{f"{target}_id": target_id},
            **fields,
        )
    )
    payload = {"target": target, "target_id": target_id, "visibility": visibility}
    payload.update({name: fields[name] for name in ("parent_id", "frame_in", "frame_out") if name in fields})
    record_created(
        session, actor=actor, entity_type="note", entity=note, project_id=project_id, payload=payload
    )
    return note


def reply(session: Session, *, actor: Actor, note_id: int, data: ReplyCreate) -> Note:
    """A reply goes on its parent's target; one may answer only what one can read."""
    parent = get_note(session, actor=actor, note_id=note_id)
    permissions.require(actor, "notes.write", parent.project_id)
    target = next(name for name in ("version", "shot", "asset") if getattr(parent, f"{name}_id") is not None)
    return _add_note(
        session,
        actor=actor,
        project_id=parent.project_id,
        target=target,
        target_id=getattr(parent, f"{target}_id"),
        body=data.body,
        visibility=data.visibility,
        parent_id=parent.id,
    )


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
    """A target's notes and their replies, oldest first."""
    entity = _REPOSITORIES[target](session, actor).get(target_id)
    permissions.require(actor, "notes.read_shared", entity.project_id)
    filters: dict[str, object] = {f"{target}_id": target_id}
    if not sees_internal(actor, entity.project_id):
        filters["visibility"] = "client"
    return NoteRepository(session, actor).list(filters=filters, after=after, limit=limit)


# Playlists.


def create_playlist(session: Session, *, actor: Actor, project_id: int, data: PlaylistCreate) -> Playlist:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "playlists.write", project_id)
    repository = PlaylistRepository(session, actor)
    if repository.first(Playlist.project_id == project_id, Playlist.name == data.name) is not None:
        raise Conflict(f"playlist {data.name!r} already exists")
    playlist = repository.add(
        Playlist(
            project_id=project_id,
            name=data.name,
            kind=data.kind,
            shared_with_clients=data.shared_with_clients,
            created_by=actor.user_id,
        )
    )
    record_created(
        session,
        actor=actor,
        entity_type="playlist",
        entity=playlist,
        project_id=project_id,
        payload={"name": data.name, "kind": data.kind, "shared_with_clients": data.shared_with_clients},
    )
    if data.version_ids:
        add_to_playlist(
            session, actor=actor, playlist_id=playlist.id, data=PlaylistAdd(version_ids=data.version_ids)
        )
    return playlist


def get_playlist(session: Session, *, actor: Actor, playlist_id: int) -> Playlist:
    playlist = PlaylistRepository(session, actor).get(playlist_id)
    permissions.require(actor, "versions.read", playlist.project_id)
    if not playlist.shared_with_clients and not sees_internal(actor, playlist.project_id):
        # Not shared with this reader: as invisible as another project's playlist.
        raise NotFound(f"playlist {playlist_id} not found")
    return playlist


def list_playlists(
    session: Session, *, actor: Actor, project_id: int, after: int | None = None, limit: int = 100
) -> list[Playlist]:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "versions.read", project_id)
    filters: dict[str, object] = {"project_id": project_id}
    if not sees_internal(actor, project_id):
        filters["shared_with_clients"] = True
    return PlaylistRepository(session, actor).list(filters=filters, after=after, limit=limit)


def update_playlist(session: Session, *, actor: Actor, playlist_id: int, data: PlaylistUpdate) -> Playlist:
    playlist = get_playlist(session, actor=actor, playlist_id=playlist_id)
    permissions.require(actor, "playlists.write", playlist.project_id)
    update = changes(data)
    if "name" in update and update["name"] != playlist.name:
        taken = PlaylistRepository(session, actor).first(
            Playlist.project_id == playlist.project_id, Playlist.name == update["name"]
        )
        if taken is not None:
            raise Conflict(f"playlist {update['name']!r} already exists")
    changed = {name: value for name, value in update.items() if getattr(playlist, name) != value}
    for name, value in changed.items():
        setattr(playlist, name, value)
    session.flush()
    record_updated(
        session,
        actor=actor,
        entity_type="playlist",
        entity=playlist,
        project_id=playlist.project_id,
        payload=changed,
    )
    return playlist


def add_to_playlist(session: Session, *, actor: Actor, playlist_id: int, data: PlaylistAdd) -> Playlist:
    """Insert versions at `position` (the end by default); a version already there moves."""
    playlist = get_playlist(session, actor=actor, playlist_id=playlist_id)
    permissions.require(actor, "playlists.write", playlist.project_id)
    wanted = list(dict.fromkeys(data.version_ids))
    found = set(
        session.scalars(
            VersionRepository(session, actor)
            .select()
            .with_only_columns(Version.id)
            .where(
                Version.id.in_([i for i in wanted if valid_id(i)]), Version.project_id == playlist.project_id
            )
        )
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidInput(f"version {missing[0]} not found in the playlist's project")
    order = [item.version_id for item in playlist.items if item.version_id not in found]
    at = len(order) if data.position is None else min(data.position, len(order))
    order[at:at] = wanted
    _set_order(session, playlist, order)
    record(
        session,
        actor=actor,
        kind="playlist.versions_added",
        entity_type="playlist",
        entity_id=playlist.id,
        project_id=playlist.project_id,
        payload={"version_ids": wanted, "position": at},
    )
    return playlist


def remove_from_playlist(session: Session, *, actor: Actor, playlist_id: int, version_id: int) -> Playlist:
    playlist = get_playlist(session, actor=actor, playlist_id=playlist_id)
    permissions.require(actor, "playlists.write", playlist.project_id)
    order = [item.version_id for item in playlist.items]
    if version_id not in order:
        raise NotFound(f"version {version_id} is not in playlist {playlist_id}")
    order.remove(version_id)
    _set_order(session, playlist, order)
    record(
        session,
        actor=actor,
        kind="playlist.version_removed",
        entity_type="playlist",
        entity_id=playlist.id,
        project_id=playlist.project_id,
        payload={"version_id": version_id},
    )
    return playlist


def _set_order(session: Session, playlist: Playlist, order: list[int]) -> None:
    # Rewritten whole: playlists are short, and positions stay 0..n-1 without gaps.
    playlist.items.clear()
    session.flush()
    playlist.items.extend(
        PlaylistItem(version_id=version_id, position=index) for index, version_id in enumerate(order)
    )
    session.flush()
    session.refresh(playlist)


def playlist_versions(session: Session, *, actor: Actor, playlist: Playlist) -> list[Version]:
    """The playlist's versions in order (the caller has been allowed to read the playlist)."""
    ids = [item.version_id for item in playlist.items]
    rows = {
        v.id: v
        for v in session.scalars(VersionRepository(session, actor).select().where(Version.id.in_(ids)))
    }
    return [rows[i] for i in ids if i in rows]


# Decisions.


def decide(
    session: Session, *, actor: Actor, version_id: int, decision: DecisionKind, data: DecisionCreate
) -> Decision:
    """Approve a version or request changes, and keep the decision.

    The version moves along its workflow or the decision is refused (409). Its task follows
    when the task workflow has that step from where the task is (review -> approved, say);
    a task elsewhere (still in progress, a project that does not put tasks in review) stays
    where it is: a decision on the version must not be blocked by how the task is planned.
    """
    version = VersionRepository(session, actor).get(version_id)
    permissions.require(actor, "versions.review", version.project_id)
    if data.playlist_id is not None:
        playlist = get_playlist(session, actor=actor, playlist_id=data.playlist_id)
        if playlist.project_id != version.project_id:
            raise InvalidInput(f"playlist {playlist.id} is not in version {version.id}'s project")
    task = TaskRepository(session, actor).get(version.task_id)
    version_to, task_to = DECISION_STATUSES[decision]
    project_id = version.project_id
    workflow.check_transition(
        session, project_id=project_id, kind="version", from_code=version.status, to_code=version_to
    )
    moves: dict[str, list[str]] = {}
    if version.status != version_to:
        moves["version"] = [version.status, version_to]
        version.status = version_to
    if task.status != task_to and _task_may_move(session, project_id, task.status, task_to):
        moves["task"] = [task.status, task_to]
        task.status = task_to
    row = DecisionRepository(session, actor).add(
        Decision(
            project_id=project_id,
            version_id=version.id,
            playlist_id=data.playlist_id,
            author_id=actor.user_id,
            decision=decision,
            comment=data.comment,
            version_status=version.status,
            task_status=task.status,
        )
    )
    if "version" in moves:
        record_updated(
            session,
            actor=actor,
            entity_type="version",
            entity=version,
            project_id=project_id,
            payload={"status": moves["version"]},
        )
    if "task" in moves:
        record_updated(
            session,
            actor=actor,
            entity_type="task",
            entity=task,
            project_id=project_id,
            payload={"status": moves["task"]},
        )
    record(
        session,
        actor=actor,
        kind=f"review.{decision}",
        entity_type="version",
        entity_id=version.id,
        project_id=project_id,
        payload={"decision_id": row.id, "task_id": task.id, "playlist_id": data.playlist_id, **moves},
    )
    return row


def _task_may_move(session: Session, project_id: int, from_code: str, to_code: str) -> bool:
    try:
        workflow.check_transition(
            session, project_id=project_id, kind="task", from_code=from_code, to_code=to_code
        )
    except (InvalidTransition, InvalidInput):
        return False
    return True


def list_decisions(session: Session, *, actor: Actor, version_id: int) -> list[Decision]:
    version = VersionRepository(session, actor).get(version_id)
    permissions.require(actor, "versions.read", version.project_id)
    return DecisionRepository(session, actor).list(filters={"version_id": version_id})


def note_counts(session: Session, *, actor: Actor, version_ids: list[int]) -> dict[int, int]:
    """How many notes the actor can read on each version (for lists and thumbnails)."""
    stmt = (
        NoteRepository(session, actor)
        .select()
        .with_only_columns(Note.version_id, func.count(Note.id))
        .where(Note.version_id.in_(version_ids))
        .group_by(Note.version_id)
    )
    if not actor.is_admin:
        internal = [p for p in actor.roles if sees_internal(actor, p)]
        stmt = stmt.where((Note.visibility == "client") | Note.project_id.in_(internal))
    return dict(session.execute(stmt).all())
