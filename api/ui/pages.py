"""The web interface's pages, under /ui: server-rendered HTML (Jinja2, autoescaped).

Every page reads through the same repositories and services as the API, with the logged-in
user as the actor: the project scope and the role table decide what shows, here as there.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from api.deps import state_of
from api.ui.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_DAYS,
    FormDep,
    Page,
    PageDep,
    check_csrf,
    client_of,
    new_login_token,
    set_cookie,
    start_session,
)
from bifrost_core.assets.models import Asset
from bifrost_core.assets.repository import AssetRepository
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput, NotFound, Unauthenticated
from bifrost_core.media.service import PROXY, THUMBNAILS
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.projects.repository import ProjectRepository, SequenceRepository, ShotRepository
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.repository import frame_range
from bifrost_core.reviews.schemas import DecisionCreate, NoteCreate, ReplyCreate
from bifrost_core.storage.models import BlobLocation
from bifrost_core.tasks.models import Task, task_assignees
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.users import passwords, permissions
from bifrost_core.users import service as users
from bifrost_core.users.models import User
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from bifrost_core.versions.repository import RepresentationRepository, VersionRepository
from bifrost_core.workflow import service as workflow

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)

# The representations the review-media flow makes (agreed by name with bifrost_core.media).
# Only this site's scripts, styles and media; no framing (an approve button under another
# site's page would be clickjacking); forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(
    page: Page | None, request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    context.update(
        request=request,
        user=page.actor if page else None,
        csrf=page.csrf if page else "",
    )
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this interface: a log-in never sends anyone to another site."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target


# Logging in and out.


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = Query(None, max_length=2000)) -> HTMLResponse:
    token = new_login_token()
    response = render(None, request, "login.html", login_csrf=token, next=_safe_next(next), error=None)
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    check_csrf(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf") or "-")
    state = state_of(request)
    client = client_of(request)
    target = _safe_next(form.get("next"))
    try:
        state.authenticator.refuse_if_limited(client)
        if form.get("token"):
            caller = state.authenticator.caller(f"Bearer {form['token'].strip()}", client)
            secret = start_session(state, actor=caller.actor, parent_token_id=caller.token_id)
        else:
            secret = _password_session(state, form.get("username", ""), form.get("password", ""), client)
    except Unauthenticated as exc:
        token = new_login_token()
        response = render(None, request, "login.html", 401, login_csrf=token, next=target, error=exc.message)
        set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
        return response
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, secret, max_age=SESSION_DAYS * 86400)
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


def _password_session(state, username: str, password: str, client: str | None) -> str:
    with UnitOfWork(state.database) as uow:
        try:
            user = passwords.check_password(uow.session, username=username.strip(), password=password)
        except Unauthenticated:
            state.authenticator.count_failure(client)
            raise
        actor = users.actor_for_user(uow.session, user)
        uow.commit()  # a rehash with current parameters, if one was due
    return start_session(state, actor=actor, parent_token_id=None)


@router.post("/logout")
def logout(page: PageDep, form: FormDep) -> Response:
    users.revoke_token(page.session, actor=page.actor, token_id=page.token_id)
    page.commit()
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


# Browsing.


def _readable(page: Page, project_id: int, action: str = "production.read") -> None:
    permissions.require(page.actor, action, project_id)


@router.get("/", response_class=HTMLResponse)
def projects(request: Request, page: PageDep) -> HTMLResponse:
    rows = [
        p
        for p in ProjectRepository(page.session, page.actor).list()
        if permissions.allowed(page.actor, "production.read", p.id)
    ]
    return render(page, request, "projects.html", projects=rows)


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project(request: Request, page: PageDep, project_id: int) -> HTMLResponse:
    row = ProjectRepository(page.session, page.actor).get(project_id)
    _readable(page, row.id)
    sequences = SequenceRepository(page.session, page.actor).list(filters={"project_id": row.id})
    assets = AssetRepository(page.session, page.actor).list(filters={"project_id": row.id})
    playlists = reviews.list_playlists(page.session, actor=page.actor, project_id=row.id, limit=1000)
    return render(
        page, request, "project.html", project=row, sequences=sequences, assets=assets, playlists=playlists
    )


@router.get("/sequences/{sequence_id}", response_class=HTMLResponse)
def sequence(request: Request, page: PageDep, sequence_id: int) -> HTMLResponse:
    row: Sequence = SequenceRepository(page.session, page.actor).get(sequence_id)
    _readable(page, row.project_id)
    shots = ShotRepository(page.session, page.actor).list(filters={"sequence_id": row.id})
    project = ProjectRepository(page.session, page.actor).get(row.project_id)
    return render(page, request, "sequence.html", project=project, sequence=row, shots=shots)


@router.get("/shots/{shot_id}", response_class=HTMLResponse)
def shot(
    request: Request,
    page: PageDep,
    shot_id: int,
    status: str | None = Query(None, max_length=32),
    task: str | None = Query(None, max_length=20),
) -> HTMLResponse:
    row: Shot = ShotRepository(page.session, page.actor).get(shot_id)
    sequence = SequenceRepository(page.session, page.actor).get(row.sequence_id)
    return _entity_page(request, page, "shot", row, f"{sequence.code}/{row.code}", status, task)


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
def asset(
    request: Request,
    page: PageDep,
    asset_id: int,
    status: str | None = Query(None, max_length=32),
    task: str | None = Query(None, max_length=20),
) -> HTMLResponse:
    row: Asset = AssetRepository(page.session, page.actor).get(asset_id)
    return _entity_page(request, page, "asset", row, row.code, status, task)


def _entity_page(request, page: Page, kind: str, entity, title: str, status: str | None, task: str | None):
    # The filter form sends empty values for "any".
    task_id = _int({"task": task or ""}, "task")
    _readable(page, entity.project_id)
    project = ProjectRepository(page.session, page.actor).get(entity.project_id)
    tasks = []
    if permissions.allowed(page.actor, "tasks.read", entity.project_id):
        tasks = TaskRepository(page.session, page.actor).list(filters={f"{kind}_id": entity.id})
    versions: list[Version] = []
    if permissions.allowed(page.actor, "versions.read", entity.project_id):
        stmt = (
            VersionRepository(page.session, page.actor)
            .select()
            .where(getattr(Version, f"{kind}_id") == entity.id)
            .order_by(Version.created_at.desc(), Version.id.desc())
            .limit(200)
        )
        if status:
            stmt = stmt.where(Version.status == status)
        if task_id:
            stmt = stmt.where(Version.task_id == task_id)
        versions = list(page.session.scalars(stmt))
    statuses = workflow.get_workflow(page.session, project_id=entity.project_id, kind="version").statuses
    return render(
        page,
        request,
        "entity.html",
        project=project,
        kind=kind,
        entity=entity,
        title=title,
        tasks=tasks,
        task_names={t.id: t.name for t in tasks},
        versions=versions,
        thumbnails=_thumbnails(versions),
        statuses=[s.code for s in statuses],
        status=status,
        task_filter=task_id,
    )


def _thumbnails(versions: list[Version]) -> dict[int, int]:
    """Version id -> the file id of its thumbnail (the middle one when there are three)."""
    found: dict[int, int] = {}
    for version in versions:
        for rep in version.representations:
            if rep.name == THUMBNAILS and rep.files:
                by_frame = sorted(rep.files, key=lambda file: (file.frame is None, file.frame or 0))
                found[version.id] = by_frame[len(by_frame) // 2].id
    return found


@router.get("/tasks/mine", response_class=HTMLResponse)
def my_tasks(request: Request, page: PageDep) -> HTMLResponse:
    stmt = (
        TaskRepository(page.session, page.actor)
        .select()
        .join(task_assignees, task_assignees.c.task_id == Task.id)
        .where(task_assignees.c.user_id == page.actor.user_id)
        .order_by(Task.due_date.is_(None), Task.due_date, Task.id)
    )
    rows = [
        t for t in page.session.scalars(stmt) if permissions.allowed(page.actor, "tasks.read", t.project_id)
    ]
    shots = {
        s.id: s for s in page.session.scalars(select(Shot).where(Shot.id.in_({t.shot_id for t in rows})))
    }
    assets = {
        a.id: a for a in page.session.scalars(select(Asset).where(Asset.id.in_({t.asset_id for t in rows})))
    }
    projects = {
        p.id: p
        for p in page.session.scalars(select(Project).where(Project.id.in_({t.project_id for t in rows})))
    }
    return render(page, request, "my_tasks.html", tasks=rows, shots=shots, assets=assets, projects=projects)


# Review.


def _proxy(version: Version) -> dict[str, Any] | None:
    for rep in version.representations:
        if rep.name == PROXY and rep.files:
            meta = rep.meta or {}
            return {
                "file_id": rep.files[0].id,
                # A fraction's text (24, 24000/1001), as the review-media flow records it.
                "fps": float(Fraction(str(meta.get("fps") or 24))),
                "first_frame": rep.frame_in,
                "last_frame": rep.frame_out,
            }
    return None


def _player(page: Page, version: Version) -> dict[str, Any]:
    """What the player script needs about one version."""
    proxy = _proxy(version)
    span = frame_range(page.session, version.id)
    first = (proxy or {}).get("first_frame") or (span[0] if span else 1)
    last = (proxy or {}).get("last_frame") or (span[1] if span else first)
    return {
        "version_id": version.id,
        "src": f"/ui/files/{proxy['file_id']}" if proxy else None,
        "fps": proxy["fps"] if proxy else 24.0,
        "first_frame": first,
        "last_frame": last,
    }


def _version_title(page: Page, version: Version) -> str:
    task = TaskRepository(page.session, page.actor).get(version.task_id)
    if version.shot_id:
        shot = ShotRepository(page.session, page.actor).get(version.shot_id)
        sequence = SequenceRepository(page.session, page.actor).get(shot.sequence_id)
        entity = f"{sequence.code}/{shot.code}"
    else:
        entity = AssetRepository(page.session, page.actor).get(version.asset_id).code  # type: ignore[arg-type]
    return f"{entity} {task.name} v{version.number:03d}" + (
        "" if version.variant == "main" else f" ({version.variant})"
    )


@router.get("/versions/{version_id}", response_class=HTMLResponse)
def version_page(
    request: Request,
    page: PageDep,
    version_id: int,
    playlist: int | None = Query(None, ge=1),
    frame: int | None = Query(None, ge=-(2**31) + 1, le=2**31 - 1),
) -> HTMLResponse:
    version = VersionRepository(page.session, page.actor).get(version_id)
    _readable(page, version.project_id, "versions.read")
    notes = reviews.list_notes(
        page.session, actor=page.actor, target="version", target_id=version.id, limit=1000
    )
    task = TaskRepository(page.session, page.actor).get(version.task_id)
    player = _player(page, version)
    return render(
        page,
        request,
        "version.html",
        version=version,
        task=task,
        title=_version_title(page, version),
        player=player,
        notes=[n for n in notes if n.parent_id is None],
        replies=_replies(notes),
        authors=_authors(page, notes),
        may_decide=permissions.allowed(page.actor, "versions.review", version.project_id),
        may_note=permissions.allowed(page.actor, "notes.write", version.project_id),
        sees_internal=reviews.sees_internal(page.actor, version.project_id),
        playlist_id=playlist,
        frame=frame if frame is not None else player["first_frame"],
    )


def _replies(notes) -> dict[int, list]:
    replies: dict[int, list] = {}
    for note in notes:
        if note.parent_id is not None:
            replies.setdefault(note.parent_id, []).append(note)
    return replies


def _authors(page: Page, notes) -> dict[int, str]:
    ids = {n.author_id for n in notes if n.author_id}
    return dict(page.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


@router.get("/playlists/{playlist_id}", response_class=HTMLResponse)
def playlist_page(request: Request, page: PageDep, playlist_id: int) -> HTMLResponse:
    playlist = reviews.get_playlist(page.session, actor=page.actor, playlist_id=playlist_id)
    versions = reviews.playlist_versions(page.session, actor=page.actor, playlist=playlist)
    items = [{**_player(page, v), "title": _version_title(page, v), "status": v.status} for v in versions]
    return render(page, request, "playlist.html", playlist=playlist, items=items)


def _int(form: dict[str, str], name: str, required: bool = False) -> int | None:
    value = form.get(name, "").strip()
    if not value:
        if required:
            raise InvalidInput(f"{name}: a number is required")
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name}: {value[:20]!r} is not a whole number") from None


@router.post("/versions/{version_id}/notes")
def add_note(page: PageDep, form: FormDep, version_id: int) -> Response:
    frame = _int(form, "frame")
    data = NoteCreate(
        body=form.get("body", ""),
        frame_in=frame,
        frame_out=_int(form, "frame_out"),
        visibility="client" if form.get("visibility") == "client" else "internal",
    )
    reviews.create_note(page.session, actor=page.actor, target="version", target_id=version_id, data=data)
    page.commit()
    anchor = f"?frame={frame}" if frame is not None else ""
    return RedirectResponse(f"/ui/versions/{version_id}{anchor}", status_code=303)


@router.post("/notes/{note_id}/replies")
def add_reply(page: PageDep, form: FormDep, note_id: int) -> Response:
    visibility = "client" if form.get("visibility") == "client" else "internal"
    note = reviews.reply(
        page.session,
        actor=page.actor,
        note_id=note_id,
        data=ReplyCreate(body=form.get("body", ""), visibility=visibility),
    )
    page.commit()
    return RedirectResponse(f"/ui/versions/{note.version_id}", status_code=303)


def _decide(page: Page, form: dict[str, str], version_id: int, decision: str) -> Response:
    playlist = _int(form, "playlist")
    data = DecisionCreate(comment=form.get("comment", ""), playlist_id=playlist)
    reviews.decide(page.session, actor=page.actor, version_id=version_id, decision=decision, data=data)  # type: ignore[arg-type]
    page.commit()
    back = f"/ui/playlists/{playlist}" if playlist else f"/ui/versions/{version_id}"
    return RedirectResponse(back, status_code=303)


@router.post("/versions/{version_id}/approve")
def approve(page: PageDep, form: FormDep, version_id: int) -> Response:
    return _decide(page, form, version_id, "approve")


@router.post("/versions/{version_id}/request-changes")
def request_changes(page: PageDep, form: FormDep, version_id: int) -> Response:
    return _decide(page, form, version_id, "request_changes")


# Media: a representation's file, by its id, for the player and the thumbnails.

_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


@router.get("/files/{file_id}")
def media_file(page: PageDep, file_id: int) -> Response:
    file = page.session.get(RepresentationFile, file_id) if 0 < file_id < 2**63 else None
    if file is None:
        raise NotFound(f"file {file_id} not found")
    # Through the scoped repository: a file of another project's version is not found.
    representation: Representation = RepresentationRepository(page.session, page.actor).get(
        file.representation_id
    )
    _readable(page, representation.version.project_id, "versions.read")
    media_type = _MEDIA_TYPES.get(os.path.splitext(file.name)[1].lower(), "application/octet-stream")
    for url in page.session.scalars(select(BlobLocation.url).where(BlobLocation.blob_id == file.blob_id)):
        path = url.removeprefix("file://")
        if path.startswith("/") and os.path.isfile(path):
            # FileResponse answers Range requests: the player seeks without reading the whole file.
            return FileResponse(
                path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"}
            )
    raise NotFound(f"file {file_id} is not on a tier this server can read")
