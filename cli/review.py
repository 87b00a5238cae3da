"""`bifrost review`: playlists, notes at frames, replies and decisions on versions.

Versions, playlists and notes are named by id (`bifrost version list --json` shows versions').
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Review sessions: playlists, notes, approvals.", no_args_is_help=True)
playlist_app = typer.Typer(help="Playlists: ordered versions to review together.", no_args_is_help=True)
note_app = typer.Typer(help="Notes on versions, at a frame or a frame range.", no_args_is_help=True)
app.add_typer(playlist_app, name="playlist")
app.add_typer(note_app, name="note")

VersionId = Annotated[int, typer.Argument(min=1, help="The version's id")]
PlaylistId = Annotated[int, typer.Argument(min=1, help="The playlist's id")]
CommentOption = Annotated[str, typer.Option(help="Why (kept with the decision)")]
PlaylistOption = Annotated[
    int | None, typer.Option("--playlist", min=1, help="The playlist it was decided in")
]


def _playlist_columns():
    return [
        ("id", lambda p: p.id),
        ("name", lambda p: p.name),
        ("kind", lambda p: p.kind),
        ("shared with clients", lambda p: "yes" if p.shared_with_clients else "no"),
        ("versions", lambda p: len(p.items)),
    ]


@playlist_app.command("create")
def playlist_create(
    project: Annotated[str, typer.Argument(help="Project code")],
    name: Annotated[str, typer.Argument(help="e.g. 'dailies 2026-11-29'")],
    kind: Annotated[str, typer.Option(help="daily, client or other")] = "daily",
    shared: Annotated[
        bool, typer.Option("--shared/--internal", help="Shared with the project's clients")
    ] = False,
    version: Annotated[
        list[int] | None, typer.Option("--version", min=1, help="A version id (repeatable)")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Create a playlist, optionally with versions in the order given."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import PlaylistCreate

    data = PlaylistCreate(name=name, kind=kind, shared_with_clients=shared, version_ids=version or [])
    with unit_of_work() as uow:
        project_id = project_by_code(uow.session, uow.actor, project).id
        playlist = service.create_playlist(uow.session, actor=uow.actor, project_id=project_id, data=data)
        uow.commit()
        _show(playlist, as_json, done_line=f"created playlist {playlist.id} ({name})")


@playlist_app.command("add")
def playlist_add(
    playlist_id: PlaylistId,
    version_ids: Annotated[list[int], typer.Argument(min=1, help="Version ids, in order")],
    position: Annotated[
        int | None, typer.Option(min=0, help="Insert here (0 is first); the end by default")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Add versions to a playlist (one already in it moves)."""
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import PlaylistAdd

    data = PlaylistAdd(version_ids=version_ids, position=position)
    with unit_of_work() as uow:
        playlist = service.add_to_playlist(uow.session, actor=uow.actor, playlist_id=playlist_id, data=data)
        uow.commit()
        _show(playlist, as_json, done_line=f"playlist {playlist.id} holds {len(playlist.items)} version(s)")


@playlist_app.command("list")
def playlist_list(
    project: Annotated[str, typer.Argument(help="Project code")], as_json: bool = JsonOption
) -> None:
    """The project's playlists (a client sees only those shared with clients)."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import PlaylistRead

    with unit_of_work() as uow:
        project_id = project_by_code(uow.session, uow.actor, project).id
        rows = service.list_playlists(uow.session, actor=uow.actor, project_id=project_id, limit=1000)
        render_list(rows, PlaylistRead, _playlist_columns(), as_json=as_json, title=f"Playlists of {project}")


@playlist_app.command("show")
def playlist_show(playlist_id: PlaylistId, as_json: bool = JsonOption) -> None:
    """A playlist and its versions in order."""
    from bifrost_core.reviews import service

    with unit_of_work() as uow:
        _show(service.get_playlist(uow.session, actor=uow.actor, playlist_id=playlist_id), as_json)


def _show(playlist, as_json: bool, done_line: str | None = None) -> None:
    from bifrost_core.reviews.schemas import PlaylistDetail, PlaylistRead

    detail = PlaylistDetail(
        **PlaylistRead.model_validate(playlist).model_dump(),
        version_ids=[item.version_id for item in playlist.items],
    )
    if done_line and not as_json:
        done(done_line)
        return
    render_one(detail, PlaylistDetail, as_json=as_json, title=f"Playlist {playlist.id}")


def _note_columns():
    return [
        ("id", lambda n: n.id),
        ("reply to", lambda n: n.parent_id),
        ("frames", lambda n: _frames(n)),
        ("visibility", lambda n: n.visibility),
        ("author", lambda n: n.author_id),
        ("body", lambda n: n.body),
    ]


def _frames(note) -> str:
    if note.frame_in is None:
        return ""
    return str(note.frame_in) if note.frame_in == note.frame_out else f"{note.frame_in}-{note.frame_out}"


@note_app.command("add")
def note_add(
    version_id: VersionId,
    body: Annotated[str, typer.Argument(help="The note")],
    frame: Annotated[int | None, typer.Option(help="The frame it is about")] = None,
    frame_out: Annotated[
        int | None, typer.Option(help="The last frame of a range starting at --frame")
    ] = None,
    client: Annotated[bool, typer.Option("--client", help="Shared with clients")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Write a note on a version, at a frame or a frame range."""
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import NoteCreate, NoteRead

    data = NoteCreate(
        body=body, frame_in=frame, frame_out=frame_out, visibility="client" if client else "internal"
    )
    with unit_of_work() as uow:
        note = service.create_note(
            uow.session, actor=uow.actor, target="version", target_id=version_id, data=data
        )
        uow.commit()
        if as_json:
            render_one(note, NoteRead, as_json=True, title="")
            return
        at = f" at frame {_frames(note)}" if frame is not None else ""
        done(f"added note {note.id} on version {version_id}{at}")


@note_app.command("list")
def note_list(version_id: VersionId, as_json: bool = JsonOption) -> None:
    """A version's notes and replies, oldest first."""
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import NoteRead

    with unit_of_work() as uow:
        rows = service.list_notes(
            uow.session, actor=uow.actor, target="version", target_id=version_id, limit=1000
        )
        render_list(rows, NoteRead, _note_columns(), as_json=as_json, title=f"Notes on version {version_id}")


@app.command("reply")
def reply(
    note_id: Annotated[int, typer.Argument(min=1, help="The note answered")],
    body: Annotated[str, typer.Argument(help="The reply")],
    client: Annotated[bool, typer.Option("--client", help="Shared with clients")] = False,
) -> None:
    """Reply to a note."""
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import ReplyCreate

    data = ReplyCreate(body=body, visibility="client" if client else "internal")
    with unit_of_work() as uow:
        note = service.reply(uow.session, actor=uow.actor, note_id=note_id, data=data)
        uow.commit()
        done(f"added reply {note.id} to note {note_id}")


def _decide(version_id: int, decision: str, comment: str, playlist: int | None) -> None:
    from bifrost_core.reviews import service
    from bifrost_core.reviews.schemas import DecisionCreate

    data = DecisionCreate(comment=comment, playlist_id=playlist)
    with unit_of_work() as uow:
        row = service.decide(
            uow.session, actor=uow.actor, version_id=version_id, decision=decision, data=data
        )
        uow.commit()
        done(f"version {version_id}: {row.version_status}; its task: {row.task_status}")


@app.command("approve")
def approve(version_id: VersionId, comment: CommentOption = "", playlist: PlaylistOption = None) -> None:
    """Approve a version: it and its task move to approved."""
    _decide(version_id, "approve", comment, playlist)


@app.command("request-changes")
def request_changes(
    version_id: VersionId, comment: CommentOption = "", playlist: PlaylistOption = None
) -> None:
    """Request changes: the version moves to changes_requested, its task to retake."""
    _decide(version_id, "request_changes", comment, playlist)
