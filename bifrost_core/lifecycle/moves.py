"""Moving versions' blobs between tiers: the archive move (hot -> the policy's tier); the
restore is restores.py.

An archive move of a batch of versions, in this order:

1. copy: each blob with no good copy in the archive tier is stored there from its hot copy
   (a damaged archive copy is replaced; a hot copy whose bytes do not hash to its digest is
   reported and its versions stay hot);
2. verify: the archive copies are read back and rehashed (BLAKE3), each once it is stored
   (on an object store, while the others upload); one that does not match is reported,
   removed, and its versions stay hot;
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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import blake3
from sqlalchemy import ColumnElement, and_, delete, exists, func, select
from sqlalchemy.orm import Session, aliased

from bifrost_core.codes import project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.bulk import insert_rows
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, Conflict
from bifrost_core.events.service import record
from bifrost_core.ingest.batches import crash_point
from bifrost_core.ingest.roots import blob_store, copy_workers, tier_root, usable_store
from bifrost_core.lifecycle import policies
from bifrost_core.lifecycle.models import ArchivedVersion, ArchivePolicy, RestoreRequest
from bifrost_core.lifecycle.schemas import PolicyRules
from bifrost_core.projects.models import Project
from bifrost_core.scope import Actor
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobStore, PutResult, root_of
from bifrost_core.storage.blobstore.tier import CHUNK
from bifrost_core.storage.errors import PutFailed, storage_error
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.paths import default_publish_root
from bifrost_core.users import permissions
from bifrost_core.versions.models import Representation, RepresentationFile, Version

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


def hot_location() -> ColumnElement[bool]:
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
            hot_location(),
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
            in_hot.update(uow.session.scalars(select(Blob.hash).where(Blob.hash.in_(chunk), hot_location())))
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
    readbacks: dict[str, Future[str | None]] = {}
    with ThreadPoolExecutor(copy_workers(archive), "archive-verify") as verifier:
        with staged_copies(hot, sorted(lacking)) as (staged, unreadable):
            bad.update(unreadable)
            expected = {os.fspath(path): digest for digest, path in staged.items()}

            def read_back(result: PutResult) -> None:
                # Step 2 of a copy starts once it is stored (on an object tier, while the
                # others upload), never before.
                if expected.get(result.source) == result.digest:
                    readbacks[result.digest] = verifier.submit(archive.rehash, result.digest)

            sources = [staged[digest] for digest in sorted(staged)]
            try:
                # Hot blobs (or their downloads) are never rewritten: no spool needed.
                stored = archive.put_files(
                    sources, workers=copy_workers(archive), on_stored=read_back, stable=True
                )
            except PutFailed as exc:
                stored = exc.stored
                bad.update({digest_of(staged, failure.path): str(failure) for failure in exc.failures})
        by_source = {result.source: result for result in stored}
        for digest, path in staged.items():
            result = by_source.get(os.fspath(path))
            if result is not None and result.digest != digest:
                bad[digest] = f"its {HOT} copy is damaged (its bytes hash to {result.digest})"
        report.blobs_copied += sum(1 for result in stored if result.new)
        crash_point("archive:copied")
        # 2. read back and rehash the copies just made (the others were rehashed and found
        # good in step 1, which is what lets a rerun skip them).
        for digest, readback in sorted(readbacks.items()):
            if readback.result() != digest:
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
        record_verified(uow.session, rules.tier, [(mine[d].id, archive.url_for(d)) for d in good], now)
        moves = {move.version_id: move for move in batch}
        for version_id in archived:
            _mark_archived(uow.session, version_id, rules.tier, moves[version_id].rule, now)
            version_event(
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


def version_event(
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


def record_verified(session: Session, tier: str, located: list[tuple[int, str]], now: datetime) -> None:
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


def digest_of(staged: dict[str, Path], path: str) -> str:
    return next(digest for digest, source in staged.items() if os.fspath(source) == path)


@contextlib.contextmanager
def staged_copies(
    store: BlobStore, digests: Sequence[str]
) -> Iterator[tuple[dict[str, Path], dict[str, str]]]:
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
