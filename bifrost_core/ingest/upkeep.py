"""Keeping stored content honest: verify (rehash), gc (remove what nothing points to), du.

A blob location's URL is `<tier root>/blobs/ab/<hash>`, so each check opens the store
of the root the blob was actually written to, whatever the settings say today.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, distinct, exists, func, select
from sqlalchemy.exc import IntegrityError

from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.models import IngestFile
from bifrost_core.ingest.roots import blob_store
from bifrost_core.projects.models import Project
from bifrost_core.replication import service as replication
from bifrost_core.replication.service import ReplicaLag
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobInfo, BlobStore, root_of
from bifrost_core.storage.errors import StorageError
from bifrost_core.storage.models import Blob, BlobLease, BlobLocation
from bifrost_core.versions.models import Representation, RepresentationFile, Version


@dataclass
class Finding:
    hash: str
    tier: str
    url: str
    problem: str
    replica: str | None = None  # the replica's root, for a copy on a replica


@dataclass
class VerifyReport:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    copies_checked: int = 0  # copies on replicas
    # Replicas that could not be read (their copies are left as recorded), and each one's lag.
    unreachable: list[str] = field(default_factory=list)
    replication: list[ReplicaLag] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.unreachable


def verify(
    database: Database, settings: Settings, *, sample: int | None = None, tier: str | None = None
) -> VerifyReport:
    """Rehash every recorded blob location (or a random sample) and report corrupt or missing
    ones; then the same of the copies recorded on the tiers' replicas (see
    bifrost_core/replication), with each replica's lag."""
    replicas = replication.configured(database, settings, tier=tier)
    with UnitOfWork(database) as uow:
        stmt = select(BlobLocation.id, Blob.hash, Blob.size, BlobLocation.tier, BlobLocation.url).join(
            Blob, Blob.id == BlobLocation.blob_id
        )
        if tier is not None:
            stmt = stmt.where(BlobLocation.tier == tier)
        stmt = stmt.order_by(func.random()).limit(sample) if sample is not None else stmt.order_by(Blob.id)
        rows = uow.session.execute(stmt).all()
    report = VerifyReport()
    good: list[int] = []
    for location_id, digest, _size, tier_name, url in rows:
        report.checked += 1
        found = blob_store(settings, root_of(url, digest), tier_name).rehash(digest)
        if found is None:
            report.findings.append(Finding(digest, tier_name, url, "missing"))
        elif found != digest:
            report.findings.append(Finding(digest, tier_name, url, f"corrupt (its bytes hash to {found})"))
        else:
            good.append(location_id)
    with UnitOfWork(database) as uow:
        now = utcnow()
        for start in range(0, len(good), 500):
            chunk = good[start : start + 500]
            uow.session.execute(
                BlobLocation.__table__.update().where(BlobLocation.id.in_(chunk)).values(verified_at=now)
            )
        uow.commit()
    copies = replication.verify_copies(database, settings, replicas, sample=sample)
    report.copies_checked = copies.checked
    report.findings += [Finding(f.hash, f.tier, f.url, f.problem, f.replica) for f in copies.findings]
    report.unreachable = copies.unreachable
    report.replication = replication.lag(database, replicas)
    return report


# Blobs per locked transaction of gc: few enough that the lock (which holds every ingest's
# leases off, and on SQLite every writer) is held for milliseconds on a local tier.
GC_CHUNK = 200
# Temporary files are purged only once this old, whatever the grace: a running put's
# temporary file is younger (its writes keep its time fresh), so gc never breaks a put.
TEMP_MIN_AGE = leases.LEASE_TTL
# At most this many skipped paths are listed in the report (all are counted).
SHOWN_SKIPPED = 20


@dataclass
class GcReport:
    records_removed: int = 0
    blobs_removed: int = 0
    bytes_removed: int = 0
    temp_removed: int = 0
    roots: list[str] = field(default_factory=list)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    # A dry run removes nothing: the counts above are what a real run would remove then
    # (temporary files are not counted).
    dry_run: bool = False

    def skip(self, what: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < SHOWN_SKIPPED:
            # Names found in a tier may hold anything, terminal escapes included.
            self.skipped_examples.append(
                "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in what)
            )


def tier_roots(database: Database, settings: Settings) -> dict[str, str]:
    """Every tier root in use: the studio defaults and each project's own, root -> tier name."""
    roots = {root: name for name, root in settings.tier_roots.items()}
    with UnitOfWork(database) as uow:
        for tiers in uow.session.scalars(select(Project.storage_tiers)):
            roots.update({str(root): name for name, root in (tiers or {}).items()})
    return roots


def gc(
    database: Database, settings: Settings, *, grace_hours: float = 24.0, dry_run: bool = False
) -> GcReport:
    """Remove blobs no version points to, once older than the grace period. `dry_run`:
    only count what would be removed (no lock taken, nothing written).

    Records go first (committed), bytes after: a crash in between leaves bytes without a
    record, which the next gc removes, never a record without bytes. Bytes in a tier that
    no record knows (a crashed ingest's copies) go too, and stale temporary files.

    Every removal runs in a transaction holding `leases.lock_for_gc`, and re-checks there
    that the blob has no record or reference and no live lease (see leases.py): a blob a
    running ingest has leased is never removed. Only blobs at their content paths and the
    store's own temporary files are removed, never folders; anything else is skipped.
    """
    cutoff = utcnow() - timedelta(hours=grace_hours)
    report = GcReport(dry_run=dry_run)
    if dry_run:
        return _gc_plan(database, settings, cutoff, report)
    leases.drop_expired(database)
    with UnitOfWork(database) as uow:
        ids = uow.session.scalars(select(Blob.id).where(*_removable(cutoff)).order_by(Blob.id)).all()
    roots = {**tier_roots(database, settings), **replication.replica_roots(settings)}
    for start in range(0, len(ids), GC_CHUNK):
        roots.update(_remove_records(database, ids[start : start + GC_CHUNK], cutoff, report))

    with UnitOfWork(database) as uow:
        recorded = set(uow.session.scalars(select(Blob.hash)))
    horizon = cutoff.timestamp()
    for root, name in roots.items():
        report.roots.append(root)
        try:
            store = blob_store(settings, root, name)
            unrecorded = [i for i in store.iter_blobs() if i.digest not in recorded and i.mtime < horizon]
            for start in range(0, len(unrecorded), GC_CHUNK):
                _remove_files(database, store, unrecorded[start : start + GC_CHUNK], horizon, report)
            swept = store.purge_temp(older_than=max(grace_hours * 3600, TEMP_MIN_AGE.total_seconds()))
        except StorageError as exc:
            report.skip(f"{root}: {exc}")
            continue
        report.temp_removed += swept.removed
        for what in swept.skipped:
            report.skip(what)
    return report


def _gc_plan(database: Database, settings: Settings, cutoff: datetime, report: GcReport) -> GcReport:
    """What `gc` would remove now: unused records (their bytes counted once) and unrecorded
    blobs older than the cutoff in every tier root."""
    with UnitOfWork(database) as uow:
        unused = uow.session.execute(select(Blob.hash, Blob.size).where(*_removable(cutoff))).all()
        recorded = set(uow.session.scalars(select(Blob.hash)))
        live = set(uow.session.scalars(select(BlobLease.hash).where(BlobLease.expires_at > utcnow())))
    report.records_removed = len(unused)
    going = {digest for digest, _size in unused}
    horizon = cutoff.timestamp()
    for root, name in {**tier_roots(database, settings), **replication.replica_roots(settings)}.items():
        report.roots.append(root)
        try:
            for info in blob_store(settings, root, name).iter_blobs():
                unrecorded = info.digest not in recorded and info.digest not in live and info.mtime < horizon
                if info.digest in going or unrecorded:
                    report.blobs_removed += 1
                    report.bytes_removed += info.size
        except StorageError as exc:
            report.skip(f"{root}: {exc}")
    return report


def _removable(cutoff: datetime) -> list[ColumnElement[bool]]:
    """SQL: a blob record that no version uses, older than `cutoff`, that no ingest has leased."""
    return [
        ~exists().where(RepresentationFile.blob_id == Blob.id),
        Blob.created_at < cutoff,
        ~leases.live(Blob.hash, utcnow()),
    ]


def _remove_records(database: Database, ids: list[int], cutoff: datetime, report: GcReport) -> dict[str, str]:
    """Delete those of the records `ids` that are still removable, under the gc lock; the
    tier roots (root -> tier) of their locations, whose bytes are now unrecorded."""
    with UnitOfWork(database) as uow:
        leases.lock_for_gc(uow.session)
        locations = uow.session.execute(
            select(BlobLocation.blob_id, Blob.hash, BlobLocation.tier, BlobLocation.url)
            .join(Blob, Blob.id == BlobLocation.blob_id)
            .where(BlobLocation.blob_id.in_(ids))
        ).all()
        try:
            # Re-checked here, under the lock: a version may have started to use one meanwhile.
            removed = uow.session.execute(
                Blob.__table__.delete().where(Blob.id.in_(ids), *_removable(cutoff)).returning(Blob.id)
            ).scalars()
            gone = set(removed)
        except IntegrityError:
            # PostgreSQL: a version being registered began to use one of them (its foreign key
            # is RESTRICT). The next gc takes the others.
            report.skip(f"{len(ids)} blob record(s): in use by a version being registered")
            return {}
        uow.commit()
    report.records_removed += len(gone)
    return {root_of(url, digest): tier for blob_id, digest, tier, url in locations if blob_id in gone}


def _remove_files(
    database: Database, store: BlobStore, found: list[BlobInfo], horizon: float, report: GcReport
) -> None:
    """Remove blobs the tier holds and no record knows, under the gc lock, once re-checked
    there: still no record, no live lease, and still older than `horizon` (a rerun that
    wrote it again made it young)."""
    digests = [info.digest for info in found]
    with UnitOfWork(database) as uow:
        leases.lock_for_gc(uow.session)
        now = utcnow()
        kept = set(uow.session.scalars(select(Blob.hash).where(Blob.hash.in_(digests))))
        kept.update(
            uow.session.scalars(
                select(BlobLease.hash).where(BlobLease.hash.in_(digests), BlobLease.expires_at > now)
            )
        )
        for info in found:
            if info.digest in kept:
                continue
            try:
                removed = store.delete(info.digest, if_older_than=horizon)
            except StorageError as exc:
                report.skip(f"{store.url_for(info.digest)}: {exc}")
                continue
            if removed:
                report.blobs_removed += 1
                report.bytes_removed += info.size


@dataclass
class Usage:
    project: str
    tier: str
    blobs: int
    bytes: int


def du(database: Database) -> list[Usage]:
    """Bytes per project and tier, counting each blob once per project (shared blobs count in each)."""
    with UnitOfWork(database) as uow:
        per_project = (
            select(Version.project_id, BlobLocation.tier, Blob.id, Blob.size)
            .distinct()
            .join(Representation, Representation.version_id == Version.id)
            .join(RepresentationFile, RepresentationFile.representation_id == Representation.id)
            .join(Blob, Blob.id == RepresentationFile.blob_id)
            .join(BlobLocation, BlobLocation.blob_id == Blob.id)
            .subquery()
        )
        rows = uow.session.execute(
            select(
                Project.code,
                per_project.c.tier,
                func.count(distinct(per_project.c.id)),
                func.sum(per_project.c.size),
            )
            .join(Project, Project.id == per_project.c.project_id)
            .group_by(Project.code, per_project.c.tier)
            .order_by(Project.code, per_project.c.tier)
        ).all()
    return [Usage(code, tier, count, int(total or 0)) for code, tier, count, total in rows]


def tier_totals(database: Database) -> list[Usage]:
    """Bytes per tier as recorded, each blob once (what the tier holds for all projects)."""
    with UnitOfWork(database) as uow:
        rows = uow.session.execute(
            select(BlobLocation.tier, func.count(Blob.id), func.sum(Blob.size))
            .join(Blob, Blob.id == BlobLocation.blob_id)
            .group_by(BlobLocation.tier)
            .order_by(BlobLocation.tier)
        ).all()
    return [Usage("*", tier, count, int(total or 0)) for tier, count, total in rows]


def ingested_totals(database: Database) -> list[tuple[str, int, int]]:
    """(project code, files, bytes) that ingests have recorded, per project."""
    with UnitOfWork(database) as uow:
        rows = uow.session.execute(
            select(Project.code, func.count(IngestFile.id), func.sum(IngestFile.size))
            .join(Project, Project.id == IngestFile.project_id)
            .group_by(Project.code)
            .order_by(Project.code)
        ).all()
    return [(code, files, int(total or 0)) for code, files, total in rows]


def physical(settings: Settings, roots: Iterable[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(tier, root, bytes on the store) by listing each tier."""
    return [(name, root, blob_store(settings, root, name).usage()) for root, name in roots]
