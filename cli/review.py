"""`bifrost review`: review media of versions, playlists, notes at frames, replies and decisions.

`bifrost review media VERSION...` makes review media on demand: the review-media flow runs by
itself for every version ingest, publish and render create (its deployment's trigger); this
command makes them here or (`--deployment`) on a worker: again after a project changed its proxy
size (`--force`), or for versions made before the flow existed.

Versions, playlists and notes are named by id (`bifrost version list --json` shows versions').
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import unit_of_work
from cli.errors import EXIT_USAGE, fail
from cli.output import JsonOption, done, print_json, render_list, render_one, say
from cli.runner import through_runner

if TYPE_CHECKING:
    from bifrost_core.demo import Demo

app = typer.Typer(help="Review: media of versions, playlists, notes, approvals.", no_args_is_help=True)
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


@app.command()
def media(
    versions: list[int] = typer.Argument(..., help="Version ids (`bifrost version show`), of one project"),
    height: int | None = typer.Option(
        None, "--height", help="Proxy height (even, 64-4320); default the project's"
    ),
    force: bool = typer.Option(False, "--force", help="Make them again for versions that have them"),
    deployment: bool = typer.Option(
        False, "--deployment", help="Create a run of the review-media deployment for a worker, and return"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Make the proxy (H.264 with a burn-in), thumbnails and contact sheet of versions.

    Exit code 3 for a version you cannot see, 5 when a version has no readable frames or movie
    (the reason is recorded on it: `bifrost version show`) or the height is out of bounds.
    """
    through_runner()
    from bifrost_core.media.service import check_height
    from cli.flows import preflight, report, run_locally, start_on_worker
    from flows.registry import FLOWS

    check_height(height)
    project = _project_of(versions)
    flow_entry = FLOWS["review-media"]
    actor = preflight(flow_entry, project)
    given = {"versions": versions, "height": height, "force": force}
    if deployment:
        from cli.flows import persistent_server

        persistent_server()
        started = start_on_worker(flow_entry, {"actor": actor, "project": project, **given})
        if as_json:
            print_json(started)
        else:
            say(f"started run {started['run_id']} ({started['name']}) of {flow_entry.deployment}")
        return
    report(run_locally(flow_entry, actor, project, given, bar=False), as_json=as_json)


def _project_of(versions: list[int]) -> str:
    """The code of the one project the versions belong to (not found: exit 3)."""
    from bifrost_core.projects.models import Project
    from bifrost_core.versions.repository import VersionRepository
    from cli.common import unit_of_work

    with unit_of_work() as unit:
        repository = VersionRepository(unit.session, unit.actor)
        projects = {repository.get(version).project_id for version in versions}
        if len(projects) > 1:
            raise fail("the versions belong to several projects: run one command per project", EXIT_USAGE)
        return unit.session.get(Project, projects.pop()).code


def demo_review_media(demo: Demo) -> str:
    """The demo's step: the review media of every version of the demo project (those made
    already are kept), through the review-media flow on the embedded Prefect server."""
    from sqlalchemy import select

    from bifrost_core.versions.models import Version
    from cli.flows import prefect_env, server_ready

    with demo.session() as session:
        project_id = demo.project_id(session)
        versions = list(
            session.scalars(select(Version.id).where(Version.project_id == project_id).order_by(Version.id))
        )
    if not versions:
        return "no versions to review"
    server = prefect_env()
    from flows.review import review_media

    server_ready(server)
    report = review_media(actor=demo.actor.username, project=demo.project, versions=versions)
    made = sum(outcome.result is not None and outcome.result.created for outcome in report.outcomes)
    return f"{len(versions)} versions have them ({made} made now)"


def demo_review_page(demo: Demo) -> str:
    """The demo's last step: where its review pages are and how to log in (nothing secret is
    printed: the password is the operator's own to set)."""
    with demo.session() as session:
        project_id = demo.project_id(session)
    return (
        f"`bifrost serve`, then http://127.0.0.1:8000/ui/projects/{project_id} ; log in as "
        f"{demo.actor.username} with the password `bifrost user set-password {demo.actor.username}` "
        "sets, or with an API token (`bifrost token create`)"
    )
