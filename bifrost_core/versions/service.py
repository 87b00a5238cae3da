"""Publishing versions: gapless numbers per (task, variant), immutable content, review status."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import repeat

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bifrost_core.errors import InvalidInput
from bifrost_core.events.service import record_created, record_updated
from bifrost_core.scope import Actor
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.users import permissions
from bifrost_core.versions import repository
from bifrost_core.versions.models import Representation, RepresentationFile, Version, VersionCounter
from bifrost_core.versions.repository import VersionRepository
from bifrost_core.versions.schemas import VersionCreate, VersionUpdate
from bifrost_core.workflow import service as workflow


def allocate_number(session: Session, *, task_id: int, variant: str) -> int:
    """Next version number for (task, variant).

    One upsert that increments the counter row: PostgreSQL holds the row lock until the
    transaction ends and SQLite holds its write lock, so concurrent publishes queue
    here and a rolled-back publish gives its number back (no gaps, no duplicates).
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(VersionCounter)
        .values(task_id=task_id, variant=variant, last_number=1)
        .on_conflict_do_update(
            index_elements=[VersionCounter.task_id, VersionCounter.variant],
            set_={"last_number": VersionCounter.last_number + 1},
        )
        .returning(VersionCounter.last_number)
    )
    return session.execute(stmt).scalar_one()


def _blob_ids(session: Session, actor: Actor, hashes: set[str]) -> dict[str, int]:
    """Hash -> blob id for the content a new version may point at: what some version the actor
    can read already holds (an admin, anything stored). Content that is not stored and content
    that is not visible are refused alike, so the answer tells nothing about other projects."""
    readable = _readable_projects(actor)
    ids: dict[str, int] = {}
    ordered = sorted(hashes)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        stmt = select(Blob.hash, Blob.id).where(Blob.hash.in_(chunk))
        if readable is not None:
            stmt = stmt.where(
                exists()
                .where(RepresentationFile.blob_id == Blob.id)
                .where(Representation.id == RepresentationFile.representation_id)
                .where(Version.id == Representation.version_id, Version.project_id.in_(readable))
            )
        # .all(), not .tuples(): a 2.1 Result has keys(), so dict.update() would treat it as a mapping.
        ids.update(session.execute(stmt).all())
    missing = hashes - ids.keys()
    if missing:
        raise InvalidInput(
            f"{len(missing)} file(s) point at content that is not stored or not visible to you, "
            f"e.g. {min(missing)}"
        )
    return ids


def _readable_projects(actor: Actor) -> list[int] | None:
    """The projects whose versions the actor may read; None for all of them."""
    if actor.is_admin:
        return None
    return sorted(
        project_id for project_id in actor.roles if permissions.allowed(actor, "versions.read", project_id)
    )


def file_locations(session: Session, representation: Representation) -> dict[str, dict[str, str]]:
    """File name -> {tier: where to read it} for a representation's files (see
    `published_location`)."""
    # Imported here: the storage paths pull in fsspec and blake3, which most callers never need.
    from bifrost_core.storage.paths import published_location

    rows = session.execute(
        select(
            RepresentationFile.name,
            RepresentationFile.published_path,
            Blob.hash,
            BlobLocation.tier,
            BlobLocation.url,
        )
        .join(Blob, Blob.id == RepresentationFile.blob_id)
        .join(BlobLocation, BlobLocation.blob_id == Blob.id)
        .where(RepresentationFile.representation_id == representation.id)
    )
    found: dict[str, dict[str, str]] = {}
    for name, path, digest, tier, url in rows:
        found.setdefault(name, {})[tier] = published_location(url, digest, path)
    return found


def create_version(session: Session, *, actor: Actor, data: VersionCreate) -> Version:
    """Publish a new version of `data.task_id`, its files pointing at content the actor can
    already read (see `_blob_ids`)."""
    task = TaskRepository(session, actor).get(data.task_id)
    permissions.require(actor, "versions.create", task.project_id)
    blob_ids = _blob_ids(
        session, actor, {file.blob_hash for rep in data.representations for file in rep.files}
    )
    return write_version(session, actor=actor, task=task, data=data, blob_ids=blob_ids)


def write_version(
    session: Session,
    *,
    actor: Actor,
    task: Task,
    data: VersionCreate,
    blob_ids: Mapping[str, int],
    published_paths: Callable[[int], Iterable[str]] | None = None,
) -> Version:
    """The one writer of versions, their representations and their files, for `create_version`
    and ingest's `register_version`, which have resolved every file's blob id (each as it
    allows). `published_paths(number)` gives each file's published path, in the order of the
    representations and their files, once the number is allocated."""
    permissions.require(actor, "versions.create", task.project_id)
    version = Version(
        project_id=task.project_id,
        task_id=task.id,
        shot_id=task.shot_id,
        asset_id=task.asset_id,
        variant=data.variant,
        number=allocate_number(session, task_id=task.id, variant=data.variant),
        author_id=actor.user_id,
        comment=data.comment,
        source=data.source,
        meta=data.meta,
        status=workflow.initial_status(session, project_id=task.project_id, kind="version"),
    )
    session.add(version)
    session.flush()
    paths = iter(published_paths(version.number)) if published_paths else repeat(None)
    for rep in data.representations:
        representation = Representation(version_id=version.id, **rep.model_dump(exclude={"files"}))
        session.add(representation)
        session.flush()
        # In bulk statements: a version of thousands of frames writes in milliseconds.
        repository.add_files(
            session,
            representation.id,
            ((blob_ids[file.blob_hash], file.name, file.frame, next(paths)) for file in rep.files),
        )
    record_created(
        session,
        actor=actor,
        entity_type="version",
        entity=version,
        project_id=version.project_id,
        payload={"task_id": task.id, "variant": version.variant, "number": version.number},
    )
    workflow.follow_new_version(session, actor=actor, task=task, version=version)
    return version


def update_version(session: Session, *, actor: Actor, version_id: int, data: VersionUpdate) -> Version:
    version = VersionRepository(session, actor).get(version_id)
    permissions.require(actor, "versions.review", version.project_id)
    payload: dict[str, object] = {}
    if data.status is not None and data.status != version.status:
        workflow.check_transition(
            session,
            project_id=version.project_id,
            kind="version",
            from_code=version.status,
            to_code=data.status,
        )
        payload["status"] = [version.status, data.status]
        version.status = data.status
    if data.comment is not None:
        version.comment = data.comment
        payload["comment"] = data.comment
    session.flush()
    record_updated(
        session,
        actor=actor,
        entity_type="version",
        entity=version,
        project_id=version.project_id,
        payload=payload,
    )
    return version
