"""Moving versions' blobs between tiers: archive (hot -> the policy's tier) and restore.

An archive move of a batch of versions, in this order:

1. copy: each blob with no good copy in the archive tier is stored there from its hot copy
   (a damaged archive copy is replaced; a hot copy whose bytes do not hash to its digest is
   reported and its versions stay hot);
2. verify: the archive copies are read back and rehashed (BLAKE3); one that does not match
   is reported, removed, and its versions stay hot;
3. record: the archive locations (verified now) and the versions whose every blob has one
   are recorded in one transaction (`archived_versions`), with a `version.archived` event;
4. release: under `storage gc`'s lock (leases.py), each hot copy whose every version is
   archived, that no running ingest has leased and that has a verified archive location is
   removed: its published paths become symlinks first (to the archive copy on a local
   archive tier, else a dangling link whose target says how to restore it), then the file,
   then its hot location. A blob shared with a version that stays hot keeps its hot copy.

A crash anywhere leaves every blob with a verified copy: the hot one until step 4, which
runs only once the archive copy was verified and recorded. A rerun plans again from the
records: steps 1-2 find the archive copies good (a rehash, no copy), step 3 records what
was not, step 4 releases what is left, including hot files whose location a crash kept.
`storage gc` removes only blobs no version uses, so nothing of a move is ever its to take.

A restore is the same in the other direction, and keeps the archive copy: stage the
archive copy (read and rehashed: a damaged one is named, never restored), store it in hot,
read back and rehash the hot copy, record it and the version as restored, then point the
published paths at the hot blobs again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import blake3
from sqlalchemy import ColumnElement, and_, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from bifrost_core.codes import project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.bulk import insert_rows
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, Conflict, DamagedContent, NotFound
from bifrost_core.events.service import record
from bifrost_core.ingest.batches import crash_point
from bifrost_core.ingest.roots import blob_store, copy_workers, tier_root, usable_store
from bifrost_core.lifecycle import policies
from bifrost_core.lifecycle.models import ArchivedVersion, ArchivePolicy, RestoreRequest
from bifrost_core.lifecycle.schemas import PolicyRules
from bifrost_core.projects.models import Project
from bifrost_core.scope import Actor
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobStore, root_of
from bifrost_core.storage.blobstore.tier import CHUNK
from bifrost_core.storage.errors import PutFailed, storage_error
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.paths import default_publish_root, materialise
from bifrost_core.users import permissions
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from bifrost_core.versions.repository import VersionRepository

HOT = "hot"
# Versions per batch of a move, and bytes: a crash re-reads at most one batch.
BATCH_VERSIONS = 200
BATCH_BYTES = 4 << 30
# The target of a published path whose blob left a local hot tier for an object store.
ARCHIVED_MARK = "ARCHIVED in tier {tier}: run `bifrost archive restore --version {version}`"


@dataclass
class VersionMove:
    version_id: int
    rule: str
    files: int = 0
    bytes: int = 0


@dataclass
class TierBytes:
    """Bytes a run copies into a tier (`added`) and frees from it (`freed`)."""

    tier: str
    added: int = 0
    freed: int = 0


@dataclass
class ArchiveReport:
    """What an archive run of one project moved (or, dry, would move)."""

    project: str
    tier: str
    dry_run: bool
    versions: list[VersionMove] = field(default_factory=list)
    tiers: list[TierBytes] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_released: int = 0
    shared_kept_hot: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the project was not moved at all (a run over every project)

    def bytes_of(self, name: str) -> TierBytes:
        found = next((t for t in self.tiers if t.tier == name), None)
        if found is None:
            found = TierBytes(name)
            self.tiers.append(found)
        return found


@dataclass
class _Blob:
    id: int
    hash: str
    size: int
    versions: set[int] = field(default_factory=set)


# ---------------------------------------------------------------------------------- archive


def policy_of(session: Session, project: Project) -> PolicyRules:
    found = session.scalar(select(ArchivePolicy.rules).where(ArchivePolicy.project_id == project.id))
    return PolicyRules.model_validate(found or {})


def archive_project(
    database: Database,
    settings: Settings,
    *,
    actor: Actor,
    project: str,
    dry_run: bool = False,
    force: bool = False,
) -> ArchiveReport:
    """Move the versions the project's policy selects to its archive tier (see the module).

    Raises Conflict when the policy would leave no hot version in the project and `force`
    is not given; StorageError/StorageFull/ConfigError when a tier cannot be used: the batch
    that met it records nothing and keeps its hot copies (batches before it stay moved).
    """
    with UnitOfWork(database) as uow:
        found = project_by_code(uow.session, actor, project)
        permissions.require(actor, "project.update", found.id)
        rules = policy_of(uow.session, found)
        selection = policies.select_versions(uow.session, found, rules)
        hot_root = tier_root(settings, found, HOT)
        archive_root = tier_root(settings, found, rules.tier)
        code, project_id = found.code, found.id
    report = ArchiveReport(project=code, tier=rules.tier, dry_run=dry_run)
    chosen = selection.chosen
    if chosen and len(chosen) >= selection.hot_versions and not force:
        raise Conflict(
            f"the archive policy of project {code} would archive all {len(chosen)} of its hot versions: "
            "run it with --force to archive them all",
            project=code,
            versions=len(chosen),
        )
    with UnitOfWork(database) as uow:
        report.versions = _version_moves(uow.session, chosen)
        blobs = _blobs_of(uow.session, list(chosen))
        leftovers = _releasable(uow.session, project_id, rules.tier, exclude=set(blobs))
    _count(database, report, blobs, leftovers)
    if dry_run or (not chosen and not leftovers):
        return report
    hot = usable_store(settings, hot_root, HOT)
    archive = usable_store(settings, archive_root, rules.tier)
    for batch in _batches(report.versions, blobs):
        _archive_batch(database, settings, actor, project_id, rules, hot, archive, batch, blobs, report)
    if leftovers:
        _release(database, settings, archive, rules.tier, sorted(leftovers), report)
    return report


def archive_all(
    database: Database, settings: Settings, *, actor: Actor, dry_run: bool
) -> list[ArchiveReport]:
    """`archive_project` of every project with a policy that selects something; a project
    whose policy would archive all its hot versions is skipped (reported), never forced."""
    with UnitOfWork(database) as uow:
        rows = uow.session.execute(
            select(Project.code, ArchivePolicy.rules)
            .join(ArchivePolicy, ArchivePolicy.project_id == Project.id)
            .order_by(Project.code)
        ).all()
    reports: list[ArchiveReport] = []
    for code, rules in rows:
        parsed = PolicyRules.model_validate(rules)
        if not parsed.selects_anything:
            continue
        try:
            reports.append(archive_project(database, settings, actor=actor, project=code, dry_run=dry_run))
        except Conflict as exc:
            reports.append(ArchiveReport(project=code, tier=parsed.tier, dry_run=dry_run, skipped=str(exc)))
    return reports


def _version_moves(session: Session, chosen: dict[int, str]) -> list[VersionMove]:
    moves = {vid: VersionMove(vid, rule) for vid, rule in chosen.items()}
    for start in range(0, len(chosen), 500):
        ids = list(chosen)[start : start + 500]
        rows = session.execute(
            select(Representation.version_id, func.count(RepresentationFile.id), func.sum(Blob.size))
            .join(RepresentationFile, RepresentationFile.representation_id == Representation.id)
            .join(Blob, Blob.id == RepresentationFile.blob_id)
            .where(Representation.version_id.in_(ids))
            .group_by(Representation.version_id)
        )
        for version_id, files, size in rows:
            moves[version_id].files, moves[version_id].bytes = files, int(size or 0)
    return sorted(moves.values(), key=lambda move: move.version_id)


def _blobs_of(session: Session, version_ids: Sequence[int]) -> dict[str, _Blob]:
    """hash -> the blob, with those of `version_ids` that use it."""
    blobs: dict[str, _Blob] = {}
    for start in range(0, len(version_ids), 500):
        rows = session.execute(
            select(Blob.id, Blob.hash, Blob.size, Representation.version_id)
            .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
            .join(Representation, Representation.id == RepresentationFile.representation_id)
            .where(Representation.version_id.in_(version_ids[start : start + 500]))
        )
        for blob_id, digest, size, version_id in rows:
            blobs.setdefault(digest, _Blob(blob_id, digest, size)).versions.add(version_id)
    return blobs


def _stays_hot() -> ColumnElement[bool]:
    """SQL: the blob is used by a version that is not archived (or was restored). Aliased,
    so that it correlates with the outer query's blob only."""
    file, representation = aliased(RepresentationFile), aliased(Representation)
    return exists().where(
        file.blob_id == Blob.id,
        representation.id == file.representation_id,
        ~exists().where(
            ArchivedVersion.version_id == representation.version_id, ArchivedVersion.restored_at.is_(None)
        ),
    )


def _verified_in(tier: str) -> ColumnElement[bool]:
    """SQL: the blob has a verified location in `tier` (aliased, like `_stays_hot`)."""
    location = aliased(BlobLocation)
    return exists().where(
        location.blob_id == Blob.id, location.tier == tier, location.verified_at.is_not(None)
    )


def _hot_location() -> ColumnElement[bool]:
    location = aliased(BlobLocation)
    return exists().where(location.blob_id == Blob.id, location.tier == HOT)


def _releasable(session: Session, project_id: int, tier: str, *, exclude: set[str]) -> dict[str, int]:
    """Blobs of the project's archived versions still in hot that may leave it (a crashed
    run's): hash -> size."""
    rows = session.execute(
        select(Blob.hash, Blob.size)
        .distinct()
        .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
        .join(Representation, Representation.id == RepresentationFile.representation_id)
        .join(ArchivedVersion, ArchivedVersion.version_id == Representation.version_id)
        .join(Version, Version.id == Representation.version_id)
        .where(
            Version.project_id == project_id,
            ArchivedVersion.restored_at.is_(None),
            _hot_location(),
            _verified_in(tier),
            ~_stays_hot(),
        )
    ).all()
    return {digest: size for digest, size in rows if digest not in exclude}


def _count(
    database: Database, report: ArchiveReport, blobs: dict[str, _Blob], leftovers: dict[str, int]
) -> None:
    """Bytes per tier the run adds and frees, from the records (what a dry run shows)."""
    if not blobs and not leftovers:
        return
    with UnitOfWork(database) as uow:
        digests = list(blobs)
        in_archive: set[str] = set()
        kept: set[str] = set()
        in_hot: set[str] = set()
        moving = {vid for blob in blobs.values() for vid in blob.versions}
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            in_archive.update(
                uow.session.scalars(select(Blob.hash).where(Blob.hash.in_(chunk), _verified_in(report.tier)))
            )
            in_hot.update(uow.session.scalars(select(Blob.hash).where(Blob.hash.in_(chunk), _hot_location())))
            # Used by a hot version that is not moving now: stays hot.
            users = uow.session.execute(
                select(Blob.hash, Representation.version_id)
                .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
                .join(Representation, Representation.id == RepresentationFile.representation_id)
                .where(
                    Blob.hash.in_(chunk),
                    ~exists().where(
                        ArchivedVersion.version_id == Representation.version_id,
                        ArchivedVersion.restored_at.is_(None),
                    ),
                )
            )
            kept.update(digest for digest, version_id in users if version_id not in moving)
    archive, hot = report.bytes_of(report.tier), report.bytes_of(HOT)
    for digest, blob in blobs.items():
        if digest not in in_archive:
            archive.added += blob.size
        if digest in kept:
            report.shared_kept_hot += 1
        elif digest in in_hot:
            hot.freed += blob.size
    hot.freed += sum(leftovers.values())


def _batches(moves: list[VersionMove], blobs: dict[str, _Blob]) -> Iterator[list[VersionMove]]:
    batch: list[VersionMove] = []
    size = 0
    for move in moves:
        if batch and (len(batch) >= BATCH_VERSIONS or size + move.bytes > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(move)
        size += move.bytes
    if batch:
        yield batch


def _archive_batch(
    database: Database,
    settings: Settings,
    actor: Actor,
    project_id: int,
    rules: PolicyRules,
    hot: BlobStore,
    archive: BlobStore,
    batch: list[VersionMove],
    blobs: dict[str, _Blob],
    report: ArchiveReport,
) -> None:
    ids = {move.version_id for move in batch}
    mine = {digest: blob for digest, blob in blobs.items() if blob.versions & ids}
    # 1. copy what the archive tier lacks (or holds damaged), from the hot copies.
    lacking = archive.damaged(list(mine), workers=copy_workers(archive))
    bad: dict[str, str] = {}
    with _staged(hot, sorted(lacking)) as (staged, unreadable):
        bad.update(unreadable)
        sources = [staged[digest] for digest in sorted(staged)]
        try:
            stored = archive.put_files(sources, workers=copy_workers(archive))
        except PutFailed as exc:
            stored = exc.stored
            bad.update({_digest_of(staged, failure.path): str(failure) for failure in exc.failures})
    by_source = {result.source: result for result in stored}
    for digest, path in staged.items():
        result = by_source.get(os.fspath(path))
        if result is not None and result.digest != digest:
            bad[digest] = f"its {HOT} copy is damaged (its bytes hash to {result.digest})"
    report.blobs_copied += sum(1 for result in stored if result.new)
    crash_point("archive:copied")
    # 2. read back and rehash the copies just made (the others were rehashed and found good
    # in step 1, which is what lets a rerun skip them).
    copied = [digest for digest in sorted(lacking) if digest not in bad]
    for digest in archive.damaged(copied, workers=copy_workers(archive)):
        bad[digest] = f"its copy in tier {rules.tier} does not hash to its digest after the copy"
        with contextlib.suppress(BifrostError):
            archive.delete(digest)  # no record points at it; the next run copies it again
    crash_point("archive:verified")
    # 3. record the verified archive locations and the versions all of whose blobs have one.
    good = [digest for digest in mine if digest not in bad]
    failed_versions = {vid for digest in bad for vid in mine[digest].versions}
    archived = sorted(ids - failed_versions)
    now = utcnow()
    with UnitOfWork(database) as uow:
        _record_verified(uow.session, rules.tier, [(mine[d].id, archive.url_for(d)) for d in good], now)
        moves = {move.version_id: move for move in batch}
        for version_id in archived:
            _mark_archived(uow.session, version_id, rules.tier, moves[version_id].rule, now)
            _version_event(
                uow.session,
                actor,
                "archived",
                version_id,
                project_id,
                {
                    "tier": rules.tier,
                    "rule": moves[version_id].rule,
                    "bytes": moves[version_id].bytes,
                },
            )
        uow.commit()
    for digest, why in sorted(bad.items()):
        users = ", ".join(str(v) for v in sorted(mine[digest].versions))
        report.failures.append(f"blob {digest} (version {users}): {why}; kept in {HOT}")
    crash_point("archive:recorded")
    # 4. release the hot copies no hot version needs.
    _release(database, settings, archive, rules.tier, good, report)


def _version_event(
    session: Session,
    actor: Actor,
    what: str,
    version_id: int,
    project_id: int | None,
    payload: dict[str, object],
) -> None:
    """The `version.<what>` event of a tier move: archived, restored, restore_requested."""
    record(
        session,
        actor=actor,
        kind=f"version.{what}",
        entity_type="version",
        entity_id=version_id,
        project_id=project_id,
        payload=payload,
    )


def _record_verified(session: Session, tier: str, located: list[tuple[int, str]], now: datetime) -> None:
    """Record (blob id, URL) locations in `tier` as verified `now` (a rerun's update the URL)."""
    insert_rows(
        session,
        BlobLocation.__table__,
        ("blob_id", "tier", "url", "created_at", "verified_at"),
        ((blob_id, tier, url, now, now) for blob_id, url in located),
        conflict=("blob_id", "tier"),
        update=("url", "verified_at"),
    )


def _mark_archived(session: Session, version_id: int, tier: str, rule: str, now: datetime) -> None:
    insert_rows(
        session,
        ArchivedVersion.__table__,
        ("version_id", "tier", "rule", "archived_at", "restored_at"),
        [(version_id, tier, rule, now, None)],
        conflict=("version_id",),
        update=("tier", "rule", "archived_at", "restored_at"),
    )
    session.execute(delete(RestoreRequest).where(RestoreRequest.version_id == version_id))


# Blobs per locked transaction of a release: the lock holds ingests' leases off (and, on
# SQLite, every writer), so it is held for a few hundred file removals at most.
RELEASE_CHUNK = 200


def _release(
    database: Database,
    settings: Settings,
    archive: BlobStore,
    tier: str,
    digests: list[str],
    report: ArchiveReport,
) -> None:
    """Remove the hot copies of `digests` that may go (module docstring, step 4), each from
    the root its hot location was written under."""
    for start in range(0, len(digests), RELEASE_CHUNK):
        chunk = digests[start : start + RELEASE_CHUNK]
        with UnitOfWork(database) as uow:
            leases.lock_for_gc(uow.session)
            now = utcnow()
            rows = uow.session.execute(
                select(Blob.id, Blob.hash, BlobLocation.url)
                .join(BlobLocation, and_(BlobLocation.blob_id == Blob.id, BlobLocation.tier == HOT))
                .where(
                    Blob.hash.in_(chunk),
                    _verified_in(tier),
                    ~_stays_hot(),
                    ~leases.live(Blob.hash, now),
                )
            ).all()
            if not rows:
                continue
            ids = [blob_id for blob_id, _, _ in rows]
            published = _published(uow.session, ids)
            for blob_id, digest, url in rows:
                hot = blob_store(settings, root_of(url, digest), HOT)
                _point_at_archive(hot, archive, tier, digest, published.get(blob_id, []))
                hot.delete(digest)
                crash_point("archive:unlinked")
            uow.session.execute(
                delete(BlobLocation).where(BlobLocation.blob_id.in_(ids), BlobLocation.tier == HOT)
            )
            uow.commit()
        report.blobs_released += len(rows)


def _published(session: Session, blob_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """blob id -> (published path, version id) of each file recorded with it."""
    out: dict[int, list[tuple[str, int]]] = {}
    rows = session.execute(
        select(RepresentationFile.blob_id, RepresentationFile.published_path, Representation.version_id)
        .join(Representation, Representation.id == RepresentationFile.representation_id)
        .where(RepresentationFile.blob_id.in_(blob_ids), RepresentationFile.published_path.is_not(None))
    )
    for blob_id, path, version_id in rows:
        out.setdefault(blob_id, []).append((path, version_id))
    return out


def _point_at_archive(
    hot: BlobStore, archive: BlobStore, tier: str, digest: str, files: list[tuple[str, int]]
) -> None:
    """Replace the published hard links of a blob leaving a local hot tier (they would keep
    its bytes on the hot disk) by symlinks: to the archive copy when it has a path, else a
    dangling link whose target says the content is archived and how to restore it."""
    if hot.local_root is None or not files:
        return
    base = default_publish_root(hot)
    archived_path = archive.local_path(digest)
    for rel, version_id in files:
        target = f"{base}/{rel}"
        if not os.path.lexists(target):
            continue
        pointer = str(archived_path) if archived_path else ARCHIVED_MARK.format(tier=tier, version=version_id)
        tmp = f"{target}.archiving-{os.getpid()}"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(pointer, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise storage_error(hot.name, f"pointing published path {rel} at the archive", exc) from exc


def _digest_of(staged: dict[str, Path], path: str) -> str:
    return next(digest for digest, source in staged.items() if os.fspath(source) == path)


@contextlib.contextmanager
def _staged(store: BlobStore, digests: Sequence[str]) -> Iterator[tuple[dict[str, Path], dict[str, str]]]:
    """A local file per blob of `store` to copy from: the blob itself on a local tier, else a
    download (rehashed as it is read) in a temporary folder removed afterwards. Yields
    (digest -> path, digest -> why it cannot be read) for blobs missing or damaged."""
    staged: dict[str, Path] = {}
    unreadable: dict[str, str] = {}
    folder: str | None = None
    try:
        for digest in digests:
            local = store.local_path(digest)
            if local is not None:
                if local.exists():
                    staged[digest] = local
                else:
                    unreadable[digest] = f"it is missing from tier {store.name}"
                continue
            if folder is None:
                folder = tempfile.mkdtemp(prefix="bifrost-move-")
            path = Path(folder) / digest
            found = _download(store, digest, path)
            if found == digest:
                staged[digest] = path
            else:
                path.unlink(missing_ok=True)
                unreadable[digest] = (
                    f"it is missing from tier {store.name}"
                    if found is None
                    else f"its copy in tier {store.name} is damaged (its bytes hash to {found})"
                )
        yield staged, unreadable
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _download(store: BlobStore, digest: str, path: Path) -> str | None:
    """Copy a blob to `path`, hashing it as it goes: the digest of the bytes, None if absent."""
    from bifrost_core.storage.errors import BlobNotFound

    hasher = blake3.blake3()
    try:
        with store.open(digest) as blob, path.open("wb") as out:
            while chunk := blob.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
    except BlobNotFound:
        return None
    return hasher.hexdigest()


# ---------------------------------------------------------------------------------- restore


@dataclass
class RestoreOutcome:
    version_id: int
    state: str  # restored, hot (nothing to do), restoring (a cold tier: ready later)
    tier: str | None = None
    blobs: int = 0
    bytes: int = 0
    ready_in: float | None = None  # seconds, while restoring


@dataclass
class RestoreReport:
    outcomes: list[RestoreOutcome] = field(default_factory=list)

    @property
    def pending(self) -> list[RestoreOutcome]:
        return [o for o in self.outcomes if o.state == "restoring"]


class RestorePending(Conflict):
    """A restore from a cold tier that is not ready yet: try again after `ready_in` seconds."""

    status_code = 202
    code = "restoring"


def versions_of_shot(database: Database, actor: Actor, project: str, sequence: str, shot: str) -> list[int]:
    """Every version of a shot named by codes (NotFound if the actor cannot see it)."""
    from bifrost_core.codes import shot_by_code

    with UnitOfWork(database) as uow:
        found = project_by_code(uow.session, actor, project)
        target = shot_by_code(uow.session, actor, found.id, sequence, shot)
        shot_id = target.id
    return versions_of_shot_id(database, shot_id)


def versions_of_shot_id(database: Database, shot_id: int) -> list[int]:
    with UnitOfWork(database) as uow:
        return list(
            uow.session.scalars(select(Version.id).where(Version.shot_id == shot_id).order_by(Version.id))
        )


def versions_of_playlist(
    database: Database, actor: Actor, playlist_id: int, *, project_id: int | None = None
) -> list[int]:
    """The versions of a playlist, in its order (NotFound if the actor cannot see it, or it
    is not of `project_id` when given)."""
    from bifrost_core.reviews.models import Playlist, PlaylistItem

    with UnitOfWork(database) as uow:
        playlist = uow.session.get(Playlist, playlist_id)
        if (
            playlist is None
            or not actor.can_see(playlist.project_id)
            or (project_id is not None and playlist.project_id != project_id)
        ):
            raise NotFound(f"playlist {playlist_id} not found")
        return list(
            uow.session.scalars(
                select(PlaylistItem.version_id)
                .where(PlaylistItem.playlist_id == playlist_id)
                .order_by(PlaylistItem.position)
            )
        )


def restore_versions(
    database: Database,
    settings: Settings,
    *,
    actor: Actor,
    version_ids: Sequence[int],
    project: str | None = None,
) -> RestoreReport:
    """Bring versions back to the hot tier (module docstring). A version whose copies are in
    a tier with a restore delay is `restoring` until its request is ready. Raises
    DamagedContent naming every blob that has no good copy left (after restoring the
    others); NotFound for a version the actor cannot see (or not of `project`, when given)."""
    report = RestoreReport()
    damaged: list[str] = []
    for version_id in dict.fromkeys(version_ids):
        try:
            report.outcomes.append(_restore_one(database, settings, actor, version_id, project))
        except DamagedContent as exc:
            damaged.append(str(exc))
    if damaged:
        raise DamagedContent("; ".join(damaged), restored=[vars(o) for o in report.outcomes])
    return report


def ensure_hot(database: Database, settings: Settings, *, actor: Actor, version_id: int) -> RestoreOutcome:
    """What a flow calls before it reads a version's files (review media): restore it when
    some of its blobs are in no hot location. Raises RestorePending while a cold tier
    prepares them."""
    with UnitOfWork(database) as uow:
        outside = uow.session.scalar(
            select(func.count(Blob.id))
            .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
            .join(Representation, Representation.id == RepresentationFile.representation_id)
            .where(Representation.version_id == version_id, ~_hot_location())
        )
    if not outside:
        return RestoreOutcome(version_id, "hot")
    outcome = _restore_one(database, settings, actor, version_id)
    if outcome.state == "restoring":
        raise RestorePending(_pending_message(outcome), version_id=version_id, ready_in=outcome.ready_in)
    return outcome


def _pending_message(outcome: RestoreOutcome) -> str:
    return (
        f"version {outcome.version_id} is archived in tier {outcome.tier}: restoring, ready in "
        f"{_duration(outcome.ready_in or 0)} "
        f"(run `bifrost archive restore --version {outcome.version_id}` then)"
    )


def pending_message(report: RestoreReport) -> str:
    return "; ".join(_pending_message(outcome) for outcome in report.pending)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def _restore_one(
    database: Database, settings: Settings, actor: Actor, version_id: int, of_project: str | None = None
) -> RestoreOutcome:
    with UnitOfWork(database) as uow:
        version = VersionRepository(uow.session, actor).get(version_id)
        permissions.require(actor, "versions.create", version.project_id)
        project_id = version.project_id
        project = uow.session.get(Project, project_id)
        assert project is not None
        if of_project is not None and project.code.lower() != of_project.lower():
            raise NotFound(f"version {version_id} not found in project {of_project}")
        hot_root = tier_root(settings, project, HOT)
        rows = uow.session.execute(
            select(Blob.id, Blob.hash, Blob.size, BlobLocation.tier, BlobLocation.url)
            .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
            .join(Representation, Representation.id == RepresentationFile.representation_id)
            .outerjoin(BlobLocation, BlobLocation.blob_id == Blob.id)
            .where(Representation.version_id == version_id)
        ).all()
        archived = uow.session.scalar(
            select(ArchivedVersion).where(
                ArchivedVersion.version_id == version_id, ArchivedVersion.restored_at.is_(None)
            )
        )
        archived_tier = archived.tier if archived is not None else None
        files = _published_files(uow.session, version_id)
    tiers: dict[str, dict[str, str]] = {}
    sizes: dict[str, int] = {}
    ids: dict[str, int] = {}
    for blob_id, digest, size, tier, url in rows:
        ids[digest], sizes[digest] = blob_id, size
        located = tiers.setdefault(digest, {})
        if tier is not None:
            located[tier] = url
    needed = sorted(digest for digest, located in tiers.items() if HOT not in located)
    if not needed:
        if archived_tier is not None:
            _mark_restored(database, actor, version_id, archived_tier, 0, project_id)
        if files:  # a rerun after a crash that came before the relink
            _relink(usable_store(settings, hot_root, HOT), files)
        return RestoreOutcome(version_id, "hot" if archived_tier is None else "restored", archived_tier)
    hot = usable_store(settings, hot_root, HOT)
    # Where to restore from: the version's archive tier, else any tier holding a copy; each
    # store opened at the root the copy was written under.
    sources: dict[tuple[str, str], list[str]] = {}
    lost: list[str] = []
    for digest in needed:
        located = tiers[digest]
        tier = archived_tier if archived_tier in located else next(iter(sorted(located)), None)
        if tier is None:
            lost.append(f"{digest} (no copy recorded)")
        else:
            sources.setdefault((tier, root_of(located[tier], digest)), []).append(digest)
    if lost:
        raise DamagedContent(
            f"version {version_id}: blob(s) with no copy left: {', '.join(lost)}", blobs=lost
        )
    slowest = max((tier for tier, _ in sources), key=lambda t: settings.tier_restore_delays.get(t, 0.0))
    size = sum(sizes[d] for d in needed)
    delay = settings.tier_restore_delays.get(slowest, 0.0)
    if delay > 0:
        ready_in = _request(database, actor, version_id, slowest, delay)
        if ready_in > 0:
            return RestoreOutcome(version_id, "restoring", slowest, len(needed), size, ready_in)
    damaged: list[str] = []
    for (tier, root), digests in sources.items():
        source = usable_store(settings, root, tier)
        with _staged(source, digests) as (staged, unreadable):
            damaged.extend(f"{digest} ({why})" for digest, why in sorted(unreadable.items()))
            if staged:
                results = hot.put_files([staged[d] for d in sorted(staged)], workers=copy_workers(hot))
                for result in results:
                    expected = _digest_of(staged, result.source)
                    if result.digest != expected:
                        damaged.append(f"{expected} (its copy in tier {tier} hashes to {result.digest})")
    if damaged:
        raise DamagedContent(
            f"version {version_id} cannot be restored: its only copies of blob(s) are damaged: "
            + ", ".join(damaged),
            blobs=damaged,
        )
    crash_point("restore:copied")
    wrong = hot.damaged(needed, workers=copy_workers(hot))
    if wrong:
        raise DamagedContent(
            f"version {version_id}: the restored copies of blob(s) {', '.join(sorted(wrong))} "
            "do not hash to their digests in tier hot; run the restore again",
            blobs=sorted(wrong),
        )
    now = utcnow()
    with UnitOfWork(database) as uow:
        _record_verified(uow.session, HOT, [(ids[d], hot.url_for(d)) for d in needed], now)
        uow.commit()
    _mark_restored(database, actor, version_id, archived_tier or slowest, size, project_id)
    crash_point("restore:recorded")
    _relink(hot, files)
    return RestoreOutcome(version_id, "restored", archived_tier or slowest, len(needed), size)


def _request(database: Database, actor: Actor, version_id: int, tier: str, delay: float) -> float:
    """Seconds until the restore of `version_id` from a cold `tier` is ready (asked now, the
    first time)."""
    now = utcnow()
    with UnitOfWork(database) as uow:
        found = uow.session.scalar(select(RestoreRequest).where(RestoreRequest.version_id == version_id))
        if found is None:
            found = RestoreRequest(
                version_id=version_id,
                tier=tier,
                requested_by=actor.user_id,
                ready_at=now + timedelta(seconds=delay),
            )
            uow.session.add(found)
            uow.session.flush()
            project_id = uow.session.scalar(select(Version.project_id).where(Version.id == version_id))
            _version_event(
                uow.session,
                actor,
                "restore_requested",
                version_id,
                project_id,
                {"tier": tier, "ready_at": found.ready_at.isoformat()},
            )
            uow.commit()
        return (found.ready_at - now).total_seconds()


def _mark_restored(
    database: Database, actor: Actor, version_id: int, tier: str, size: int, project_id: int
) -> None:
    with UnitOfWork(database) as uow:
        uow.session.execute(
            update(ArchivedVersion)
            .where(ArchivedVersion.version_id == version_id, ArchivedVersion.restored_at.is_(None))
            .values(restored_at=utcnow())
        )
        uow.session.execute(delete(RestoreRequest).where(RestoreRequest.version_id == version_id))
        _version_event(
            uow.session,
            actor,
            "restored",
            version_id,
            project_id,
            {"tier": tier, "bytes": size},
        )
        uow.commit()


def _published_files(session: Session, version_id: int) -> list[tuple[str, str]]:
    return [
        (path, digest)
        for path, digest in session.execute(
            select(RepresentationFile.published_path, Blob.hash)
            .join(Blob, Blob.id == RepresentationFile.blob_id)
            .join(Representation, Representation.id == RepresentationFile.representation_id)
            .where(
                and_(Representation.version_id == version_id, RepresentationFile.published_path.is_not(None))
            )
        )
    ]


def _relink(hot: BlobStore, files: list[tuple[str, str]]) -> None:
    """Point a restored version's published paths at its hot blobs again (local tiers)."""
    if hot.local_root is not None and files:
        materialise(hot, files)


def archived_state(database: Database, version_ids: Sequence[int]) -> dict[int, str]:
    """version id -> the tier it is archived in, for those archived (and not restored)."""
    with UnitOfWork(database) as uow:
        return dict(
            uow.session.execute(
                select(ArchivedVersion.version_id, ArchivedVersion.tier).where(
                    ArchivedVersion.version_id.in_(list(version_ids)), ArchivedVersion.restored_at.is_(None)
                )
            ).all()
        )
