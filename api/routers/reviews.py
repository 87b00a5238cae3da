"""Review sessions: playlists, replies to notes, and decisions on versions.

(Notes themselves, at frames and with drawings, are under api.routers.versions.)
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import CtxDep
from api.params import After, Id, Limit, Page, page
from bifrost_core.reviews import service
from bifrost_core.reviews.models import Playlist
from bifrost_core.reviews.schemas import (
    DecisionCreate,
    DecisionRead,
    NoteRead,
    PlaylistAdd,
    PlaylistCreate,
    PlaylistDetail,
    PlaylistRead,
    PlaylistUpdate,
    ReplyCreate,
)
from bifrost_core.schemas import ReadSchema

router = APIRouter(tags=["reviews"])


class DecisionList(ReadSchema):
    items: list[DecisionRead]


def _detail(playlist: Playlist) -> PlaylistDetail:
    return PlaylistDetail(
        **PlaylistRead.model_validate(playlist).model_dump(),
        version_ids=[item.version_id for item in playlist.items],
    )


@router.get("/projects/{project_id}/playlists", response_model=Page[PlaylistRead])
def list_playlists(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    """The project's playlists; a client sees only those shared with clients."""
    rows = service.list_playlists(
        ctx.session, actor=ctx.actor, project_id=project_id, after=after, limit=limit
    )
    return ctx.respond(page(PlaylistRead, rows, limit))


@router.post("/projects/{project_id}/playlists", response_model=PlaylistDetail, status_code=201)
def create_playlist(ctx: CtxDep, project_id: Id, data: PlaylistCreate) -> Response:
    playlist = service.create_playlist(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(_detail(playlist), 201)


@router.get("/playlists/{playlist_id}", response_model=PlaylistDetail)
def get_playlist(ctx: CtxDep, playlist_id: Id) -> Response:
    return ctx.respond(_detail(service.get_playlist(ctx.session, actor=ctx.actor, playlist_id=playlist_id)))


@router.patch("/playlists/{playlist_id}", response_model=PlaylistDetail)
def update_playlist(ctx: CtxDep, playlist_id: Id, data: PlaylistUpdate) -> Response:
    playlist = service.update_playlist(ctx.session, actor=ctx.actor, playlist_id=playlist_id, data=data)
    return ctx.done(_detail(playlist))


@router.post("/playlists/{playlist_id}/versions", response_model=PlaylistDetail)
def add_to_playlist(ctx: CtxDep, playlist_id: Id, data: PlaylistAdd) -> Response:
    """Insert versions at `position` (the end by default); one already there moves."""
    playlist = service.add_to_playlist(ctx.session, actor=ctx.actor, playlist_id=playlist_id, data=data)
    return ctx.done(_detail(playlist))


@router.delete("/playlists/{playlist_id}/versions/{version_id}", response_model=PlaylistDetail)
def remove_from_playlist(ctx: CtxDep, playlist_id: Id, version_id: Id) -> Response:
    playlist = service.remove_from_playlist(
        ctx.session, actor=ctx.actor, playlist_id=playlist_id, version_id=version_id
    )
    return ctx.done(_detail(playlist))


@router.post("/notes/{note_id}/replies", response_model=NoteRead, status_code=201)
def reply(ctx: CtxDep, note_id: Id, data: ReplyCreate) -> Response:
    note = service.reply(ctx.session, actor=ctx.actor, note_id=note_id, data=data)
    return ctx.done(NoteRead.model_validate(note), 201)


@router.post("/versions/{version_id}/approve", response_model=DecisionRead, status_code=201)
def approve(ctx: CtxDep, version_id: Id, data: DecisionCreate) -> Response:
    """Approve: the version goes to `approved` and its task to `approved`, along their workflows."""
    decision = service.decide(
        ctx.session, actor=ctx.actor, version_id=version_id, decision="approve", data=data
    )
    return ctx.done(DecisionRead.model_validate(decision), 201)


@router.post("/versions/{version_id}/request-changes", response_model=DecisionRead, status_code=201)
def request_changes(ctx: CtxDep, version_id: Id, data: DecisionCreate) -> Response:
    """Request changes: the version goes to `changes_requested` and its task to `retake`."""
    decision = service.decide(
        ctx.session, actor=ctx.actor, version_id=version_id, decision="request_changes", data=data
    )
    return ctx.done(DecisionRead.model_validate(decision), 201)


@router.get("/versions/{version_id}/decisions", response_model=DecisionList)
def list_decisions(ctx: CtxDep, version_id: Id) -> Response:
    rows = service.list_decisions(ctx.session, actor=ctx.actor, version_id=version_id)
    return ctx.respond(DecisionList(items=rows))
