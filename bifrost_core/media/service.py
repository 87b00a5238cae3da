"""Review media of a version: what to make it from, making it, and recording it.

The order that keeps a version whole, as ingest's does: the media are made in a private
work folder, stored in the blob store (durable, content-addressed), leased against
`storage gc`, then recorded in one transaction (three representations, one event). A
failure before the commit records nothing but the reason, on the version
(`media_error`); a rerun of a version with review media makes nothing new.
"""

from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, InvalidInput, NotFound
from bifrost_core.events.service import record
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.ingest.roots import blob_store, tier_root
from bifrost_core.media.probe import MediaError
from bifrost_core.media.render import MediaFiles, make_media, source_of
from bifrost_core.media.settings import MAX_HEIGHT, MIN_HEIGHT, review_settings
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.scope import Actor
from bifrost_core.storage import leases
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.tasks.models import Task
from bifrost_core.users import permissions
from bifrost_core.versions import repository
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from bifrost_core.versions.repository import VersionRepository

# The representations review media make, by name; the sources they are made from, by kind.
PROXY = "review-proxy"
THUMBNAILS = "review-thumbnails"
CONTACT_SHEET = "review-contact-sheet"
REVIEW_NAMES = (PROXY, THUMBNAILS, CONTACT_SHEET)
SOURCE_KINDS = ("frames", "movie")
MAX_ERROR = 2000


class SourceFrame(BaseModel):
    name: str
    frame: int | None
    hash: str
    locations: dict[str, str]  # tier -> url


class MediaPlan(BaseModel):
    """What one version's review media are made from (plain data, read in one transaction)."""

    version_id: int
    project: str
    label: str  # the burn-in: project, shot or asset, task, version
    fps: str
    height: int
    thumbnail_height: int
    ocio: dict[str, Any] | None
    representation: str
    kind: str
    frames: list[SourceFrame]
    has_media: bool


class MediaResult(BaseModel):
    version_id: int
    label: str
    created: bool  # False: the version had these media already
    proxy: str = ""  # the proxy's blob hash
    frames: int = 0
    width: int = 0
    height: int = 0


def check_height(height: int | None) -> None:
    if height is not None and not (MIN_HEIGHT <= height <= MAX_HEIGHT and height % 2 == 0):
        raise InvalidInput(
            f"proxy height must be an even number from {MIN_HEIGHT} to {MAX_HEIGHT}, not {height}"
        )


def plan(
    session: Session, *, actor: Actor, version_id: int, height: int | None = None, project: str | None = None
) -> MediaPlan:
    """Read what the version's media are made from; NotFound for a version the actor cannot
    see (or not in `project`, when given), InvalidInput for one without frames or a movie,
    or a project's bad settings."""
    check_height(height)
    version = VersionRepository(session, actor).get(version_id)
    owner = session.get(Project, version.project_id)
    task = session.get(Task, version.task_id)
    assert owner is not None and task is not None
    if project is not None and owner.code.lower() != project.lower():
        raise NotFound(f"version {version_id} not found in project {project}")
    permissions.require(actor, "versions.create", version.project_id)
    try:
        settings = review_settings(owner.config)
    except InvalidInput as exc:
        raise InvalidInput(f"project {owner.code}: config {exc}") from None
    sources = [rep for rep in version.representations if rep.kind in SOURCE_KINDS]
    if not sources:
        kinds = ", ".join(sorted({rep.kind for rep in version.representations})) or "none"
        raise MediaError(
            f"version {version.id} has no frames or movie to review (its representations: {kinds})"
        )
    # Frames before a movie (they are what the movie was made from), then the first recorded.
    source = min(sources, key=lambda rep: (SOURCE_KINDS.index(rep.kind), rep.id))
    rows = session.execute(
        select(
            RepresentationFile.name, RepresentationFile.frame, Blob.hash, BlobLocation.tier, BlobLocation.url
        )
        .join(Blob, Blob.id == RepresentationFile.blob_id)
        .join(BlobLocation, BlobLocation.blob_id == Blob.id)
        .where(RepresentationFile.representation_id == source.id)
        .order_by(RepresentationFile.frame, RepresentationFile.name)
    )
    frames: dict[str, SourceFrame] = {}
    for name, frame, digest, tier, url in rows:
        frames.setdefault(name, SourceFrame(name=name, frame=frame, hash=digest, locations={})).locations[
            tier
        ] = url
    return MediaPlan(
        version_id=version.id,
        project=owner.code,
        label=f"{owner.code}  {_entity(session, version)}  {task.name} {version.variant} "
        f"v{version.number:03d}",
        fps=str(Fraction(owner.fps).limit_denominator(1001)),
        height=height or settings.proxy_height,
        thumbnail_height=settings.thumbnail_height,
        ocio=None if settings.ocio is None else settings.ocio.model_dump(by_alias=True),
        representation=source.name,
        kind=source.kind,
        frames=list(frames.values()),
        has_media=any(rep.name == PROXY for rep in version.representations),
    )


def make(
    database: Database,
    settings: Settings,
    *,
    actor: Actor,
    version_id: int,
    height: int | None = None,
    force: bool = False,
    project: str | None = None,
) -> MediaResult:
    """Make and record one version's review media (of `project`, when given). A MediaError
    (media that cannot be read) is recorded on the version as its `media_error` and raised."""
    with UnitOfWork(database) as uow:
        try:
            found = plan(uow.session, actor=actor, version_id=version_id, height=height, project=project)
        except MediaError as exc:
            _record_failure(uow.session, actor, version_id, str(exc))
            uow.commit()
            raise
    if found.has_media and not force:
        return MediaResult(version_id=version_id, label=found.label, created=False)
    tier = _tier(found)
    with UnitOfWork(database) as uow:
        owner = uow.session.scalars(select(Project).where(Project.code == found.project)).one()
        store = blob_store(settings, tier_root(settings, owner, tier), tier)
    work = Path(tempfile.mkdtemp(prefix="bifrost-review-"))
    try:
        try:
            files = _render(found, store, work)
        except MediaError as exc:
            with UnitOfWork(database) as uow:
                _record_failure(uow.session, actor, version_id, str(exc))
                uow.commit()
            raise
        outputs = [files.proxy, *files.thumbnails.values(), files.contact_sheet]
        stored = {Path(result.source): result for result in store.put_files(outputs, workers=1)}
        try:
            with (
                leases.leased(database, {result.digest for result in stored.values()}),
                UnitOfWork(database) as uow,
            ):
                proxy = _record(uow.session, actor, found, files, stored, tier)
                uow.commit()
        except IntegrityError:
            # Another run recorded this version's media first (a trigger and a request at once).
            return MediaResult(version_id=version_id, label=found.label, created=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MediaResult(
        version_id=version_id,
        label=found.label,
        created=True,
        proxy=proxy,
        frames=files.frames,
        width=files.width,
        height=files.height,
    )


def _tier(found: MediaPlan) -> str:
    """The tier the review media go to: the one holding the source (hot, first)."""
    tiers = set.intersection(*(set(frame.locations) for frame in found.frames)) if found.frames else set()
    if not tiers:
        raise MediaError(f"version {found.version_id}: the {found.representation} files are in no tier")
    return "hot" if "hot" in tiers else sorted(tiers)[0]


def _render(found: MediaPlan, store: Any, work: Path) -> MediaFiles:
    from bifrost_core.media.settings import OcioSettings

    inputs = work / "inputs"
    inputs.mkdir()
    tier = _tier(found)
    paths: list[Path] = []
    fetched: dict[str, Path] = {}
    previous: Path | None = None
    expected = found.frames[0].frame
    for frame in found.frames:
        path = fetched.get(frame.hash)
        if path is None:
            path = fetched[frame.hash] = _local(store, frame, tier, inputs)
        if found.kind == "frames" and frame.frame is not None and expected is not None:
            # A hole in the sequence holds the frame before it, so the timing stays true.
            paths.extend([previous or path] * max(0, frame.frame - expected))
            expected = frame.frame + 1
        paths.append(path)
        previous = path
    first = found.frames[0].frame or 1
    kind = "movie" if found.kind == "movie" else "frames"
    out = work / "out"
    out.mkdir()
    try:
        source = source_of(kind, paths[:1] if kind == "movie" else paths, first, Fraction(found.fps))
        return make_media(
            source,
            out,
            height=found.height,
            thumbnail_height=found.thumbnail_height,
            label=found.label,
            ocio=None if found.ocio is None else OcioSettings.model_validate(found.ocio),
        )
    except MediaError as exc:
        # The work folder's inputs are named by hash: a message names the files as published.
        message = str(exc)
        for frame in found.frames:
            message = message.replace(frame.hash + Path(frame.name).suffix.lower(), frame.name)
        raise MediaError(message) from None


def _local(store: Any, frame: SourceFrame, tier: str, inputs: Path) -> Path:
    """A path ffmpeg can read: the blob itself on a local tier, else a copy in the work folder.
    Named with the file's own extension (ffmpeg and OpenImageIO go by it)."""
    suffix = Path(frame.name).suffix.lower()
    local = store.local_path(frame.hash)
    target = inputs / f"{frame.hash}{suffix}"
    if local is not None:
        if not local.exists():
            raise MediaError(f"{frame.name}: its stored blob {frame.hash[:12]} is missing from tier {tier}")
        target.symlink_to(local)
        return target
    try:
        with store.open(frame.hash) as blob, target.open("wb") as copy:
            shutil.copyfileobj(blob, copy, 1 << 20)
    except BifrostError as exc:
        raise MediaError(f"{frame.name}: cannot read its stored blob: {exc}") from None
    return target


def _record(
    session: Session, actor: Actor, found: MediaPlan, files: MediaFiles, stored: dict[Path, Any], tier: str
) -> str:
    version = VersionRepository(session, actor).get(found.version_id)
    permissions.require(actor, "versions.create", version.project_id)
    ids = record_blobs(
        session, [(result.digest, result.size, result.url) for result in stored.values()], tier
    )
    taken = {rep.name for rep in version.representations if rep.name in REVIEW_NAMES}
    if taken:
        session.execute(
            delete(Representation).where(
                Representation.version_id == version.id, Representation.name.in_(taken)
            )
        )
        session.expire(version, ["representations"])
    meta = {
        "review_media": True,
        "source": found.representation,
        "width": files.width,
        "height": files.height,
        "fps": files.fps,
        "frames": files.frames,
    }
    first_frame = found.frames[0].frame or 1
    last_frame = first_frame + files.frames - 1
    proxy = stored[files.proxy]
    made = [
        (PROXY, "proxy", first_frame, last_frame, [("proxy.mp4", proxy.digest, None)]),
        (
            THUMBNAILS,
            "thumbnail",
            min(files.thumbnails),
            max(files.thumbnails),
            [
                (f"thumbnail.{frame}.jpg", stored[path].digest, frame)
                for frame, path in files.thumbnails.items()
            ],
        ),
        (
            CONTACT_SHEET,
            "thumbnail",
            None,
            None,
            [("contact-sheet.jpg", stored[files.contact_sheet].digest, None)],
        ),
    ]
    for name, kind, frame_in, frame_out, rep_files in made:
        representation = Representation(
            version_id=version.id, name=name, kind=kind, frame_in=frame_in, frame_out=frame_out, meta=meta
        )
        session.add(representation)
        session.flush()
        repository.add_files(
            session,
            representation.id,
            ((ids[digest], file, frame, None) for file, digest, frame in rep_files),
        )
    version.media_error = None
    session.flush()
    record(
        session,
        actor=actor,
        kind="version.review_media",
        entity_type="version",
        entity_id=version.id,
        project_id=version.project_id,
        payload={"proxy": proxy.digest, "frames": files.frames, "width": files.width, "height": files.height},
    )
    return proxy.digest


def _record_failure(session: Session, actor: Actor, version_id: int, reason: str) -> None:
    version = session.get(Version, version_id)
    if version is None:
        return
    version.media_error = reason[:MAX_ERROR]
    session.flush()
    record(
        session,
        actor=actor,
        kind="version.review_media_failed",
        entity_type="version",
        entity_id=version.id,
        project_id=version.project_id,
        payload={"reason": reason[:MAX_ERROR]},
    )


def _entity(session: Session, version: Version) -> str:
    if version.shot_id is not None:
        row = session.execute(
            select(Sequence.code, Shot.code)
            .join(Shot, Shot.sequence_id == Sequence.id)
            .where(Shot.id == version.shot_id)
        ).one()
        return f"{row[0]}/{row[1]}"
    if version.asset_id is not None:
        return session.get(Asset, version.asset_id).code  # type: ignore[union-attr]
    return ""
