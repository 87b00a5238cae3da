"""Ingest rules: classify planned versions against the database and register stored ones.

The order that makes ingest safe to kill at any point:
  1. bytes are copied into the blob store and made durable (one sync per batch);
  2. then, one transaction per version: blobs, version, representations, files, the
     ingest record (unique per project and content key) and the source fingerprints.
A crash before 2 leaves only unrecorded blobs (found again by the rerun, or removed by
`storage gc`); a crash inside 2 rolls the version back whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from blake3 import blake3
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bifrost_core.codes import Entities
from bifrost_core.errors import InvalidInput
from bifrost_core.events.service import record
from bifrost_core.ingest import repository
from bifrost_core.ingest.models import IngestRecord
from bifrost_core.ingest.schemas import (
    CreatedVersion,
    DurableBlob,
    PlannedRepresentation,
    PlannedVersion,
    SourceFile,
    Target,
)
from bifrost_core.scope import Actor
from bifrost_core.storage.errors import PathTemplateError, SourceError
from bifrost_core.storage.paths import PathTemplate, PublishFile, PublishTemplates, resolve
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.text import escape
from bifrost_core.users import permissions
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate
from bifrost_core.versions.service import write_version

_NOT_CODE = re.compile(r"[^A-Za-z0-9_.-]+")


def path_key(path: str) -> str:
    return blake3(path.encode("utf-8", "surrogateescape")).hexdigest()


def printable(path: str) -> str:
    """A path as text any database accepts (undecodable bytes become escapes)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def representation_name(stem: str, taken: set[str]) -> str:
    """A representation name (a code) from a file stem: spaces and non-ASCII become `_`."""
    base = _NOT_CODE.sub("_", stem).strip("_.-")[:56] or "file"
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(name)
    return name


def content_key(project_id: int, version: PlannedVersion) -> str:
    """What makes two ingests the same version: target, representations, file names and hashes."""
    manifest = {
        "project": project_id,
        "target": version.target.model_dump(),
        "representations": sorted(
            [
                rep.name,
                rep.kind,
                rep.frame_in,
                rep.frame_out,
                sorted([file.name, file.frame, file.hash] for file in rep.files),
            ]
            for rep in version.representations
        ),
    }
    return blake3(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def apply_fingerprints(session: Session, project_id: int, files: Iterable[SourceFile]) -> int:
    """Fill in the hash of every file whose size and mtime match an earlier run; returns how many."""
    by_key = {path_key(file.path): file for file in files if file.hash is None}
    known = repository.fingerprints(session, project_id, list(by_key))
    filled = 0
    for key, (size, mtime_ns, digest) in known.items():
        file = by_key[key]
        if file.size == size and file.mtime_ns == mtime_ns:
            file.hash = digest
            filled += 1
    return filled


def _task(session: Session, target: Target, shot_id: int | None, asset_id: int | None) -> Task | None:
    entity = Task.shot_id == shot_id if shot_id is not None else Task.asset_id == asset_id
    return session.scalars(select(Task).where(entity, Task.name == target.task)).first()


def classify(session: Session, *, project_id: int, versions: list[PlannedVersion]) -> None:
    """Mark each planned version known (same content already ingested), changed or new.

    Only versions whose every hash is known (from fingerprints) can be recognised here;
    the others are re-checked by content key at registration, once hashed.
    """
    complete = [version for version in versions if all(file.hash for file in version.files)]
    for version in complete:
        version.key = content_key(project_id, version)
    done = repository.records(session, project_id, [version.key for version in complete if version.key])
    entities = Entities.load(session, project_id)
    for version in versions:
        if version.key and version.key in done:
            version.status = "known"
            version.version_id, version.version_number = done[version.key]
            continue
        target = version.target
        task = _task(session, target, *entities.ids(target))
        has_versions = task is not None and session.scalar(
            select(exists().where(Version.task_id == task.id, Version.variant == target.variant))
        )
        version.status = "changed" if has_versions else "new"


def register_version(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    planned: PlannedVersion,
    blobs: dict[str, DurableBlob],
    tier: str,
    source: str,
    templates: PublishTemplates,
    project_code: str,
    comment: str = "",
    meta: dict[str, Any] | None = None,
    entities: Entities | None = None,
) -> tuple[CreatedVersion, list[tuple[str, str]]] | None:
    """Record one stored version; None when the same content was already ingested.

    Returns the version and the (published path, blob hash) of each of its files, from the
    project's path `templates`, for the caller to link on a local tier. The caller commits
    (one transaction per version). `blobs` maps each source path to its durable blob; a
    version with a file missing from it is refused whole. `entities` (Entities.load)
    saves looking the project's shots, assets and tasks up again per version.
    """
    permissions.require(actor, "versions.create", project_id)
    files = planned.files
    missing = [file.path for file in files if file.path not in blobs]
    if missing:
        raise InvalidInput(f"{printable(missing[0])} was not stored; version {planned.target.label} skipped")
    entities = entities if entities is not None else Entities.load(session, project_id)
    target = entities.resolve(planned.target)
    if not isinstance(target, Target):
        raise InvalidInput(target.reason)
    if target != planned.target:  # registered against the project's own codes
        planned = planned.model_copy(update={"target": target})
    for file in files:
        file.hash = blobs[file.path].hash
    key = content_key(project_id, planned)
    if session.scalar(select(exists().where(IngestRecord.project_id == project_id, IngestRecord.key == key))):
        return None

    shot_id, asset_id = entities.ids(target)
    task = _task(session, target, shot_id, asset_id) or tasks.create_publish_task(
        session,
        actor=actor,
        data=TaskCreate(shot_id=shot_id, asset_id=asset_id, task_type=target.task),
    )

    mine = {blobs[file.path].hash: blobs[file.path] for file in files}
    ids = repository.record_blobs(session, [(blob.hash, blob.size, blob.url) for blob in mine.values()], tier)
    published: list[tuple[str, str]] = []

    def paths(number: int) -> list[str]:  # the path templates take the version's number
        published.extend(published_paths(templates, project_code, planned, number))
        return [path for path, _ in published]

    version = write_version(
        session,
        actor=actor,
        task=task,
        data=VersionCreate(
            task_id=task.id,
            variant=target.variant,
            comment=comment,
            source=escape(source)[:1024],
            meta={**(meta or {}), "ingest_key": key},
            representations=[_representation_in(rep) for rep in planned.representations],
        ),
        blob_ids=ids,
        published_paths=paths,
    )
    session.add(IngestRecord(project_id=project_id, key=key, version_id=version.id, source=printable(source)))
    repository.save_fingerprints(
        session,
        project_id,
        (
            (path_key(file.path), printable(file.path), file.size, file.mtime_ns, ids[file.hash])
            for file in files
            if file.hash
        ),
    )
    # The unique (project, key) constraint fires here if a concurrent run got there first.
    session.flush()
    created = CreatedVersion(
        version_id=version.id,
        target=target.label,
        number=version.number,
        representations=len(planned.representations),
        files=len(files),
        size=sum(file.size for file in files),
    )
    return created, published


def published_paths(
    templates: PublishTemplates, project: str, planned: PlannedVersion, number: int
) -> list[tuple[str, str]]:
    """(published path, blob hash) of every file of a version, in the order of its
    representations and files, from the project's path template for shots or assets.

    A file whose name gives no valid path (an empty extension, a name of ``.``) or the path
    of another file raises SourceError naming that file, not the version's first.
    """
    target = planned.target
    template = templates.for_entity("shot" if target.shot else "asset")
    values = {
        "project": project,
        "sequence": target.sequence,
        "shot": target.shot,
        "asset": target.asset,
        "task": target.task,
        "variant": target.variant,
        "version": number,
    }
    files = [
        PublishFile(
            digest=file.hash or "",
            name=rep.stem or rep.name,
            ext=rep.ext,
            frame=file.frame,
            padding=rep.frame_padding,
            representation=rep.name,
        )
        for rep in planned.representations
        for file in rep.files
    ]
    try:
        return [(path, file.digest) for path, file in resolve(template, values, files)]
    except PathTemplateError as exc:
        culprit = _culprit(template, values, files)
        if culprit is None:
            raise
        raise SourceError(planned.files[culprit].path, str(exc)) from exc


def _culprit(template: PathTemplate, values: dict[str, Any], files: list[PublishFile]) -> int | None:
    """The index of the first file that gives no path, or the path of an earlier file with
    other content (one by one: only once resolving them all has failed)."""
    taken: dict[str, str] = {}
    for index, file in enumerate(files):
        try:
            [(path, _)] = resolve(template, values, [file])
        except PathTemplateError:
            return index
        if taken.setdefault(path, file.digest) != file.digest:
            return index
    return None


def _representation_in(rep: PlannedRepresentation) -> RepresentationIn:
    return RepresentationIn(
        name=rep.name,
        kind=rep.kind,
        frame_in=rep.frame_in,
        frame_out=rep.frame_out,
        frame_padding=rep.frame_padding,
        missing_frames=rep.missing_frames[:4096],
        meta={"source": escape(rep.source)},
        # A delivered name may hold control characters; a recorded one, like any typed in, may not.
        files=[FileIn(name=escape(file.name), blob_hash=file.hash, frame=file.frame) for file in rep.files],
    )


def record_summary(session: Session, *, actor: Actor, project_id: int, summary: dict[str, Any]) -> None:
    """One event per ingest or publish run, with its counts (the per-version events come from versions)."""
    record(
        session,
        actor=actor,
        kind="ingest.finished",
        entity_type="project",
        entity_id=project_id,
        project_id=project_id,
        payload=summary,
    )
