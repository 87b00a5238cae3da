"""Keeping stored content honest: verify (rehash), gc (remove what nothing points to), du.

A blob location's URL is `<tier root>/blobs/ab/<hash>`, so each check opens the store
of the root the blob was actually written to, whatever the settings say today.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, distinct, exists, func, select

from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.pipeline import blob_store
from bifrost_core.projects.models import Project
from bifrost_core.storage.blobstore import root_of
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.versions.models import Representation, RepresentationFile, Version


@dataclass
class Finding:
    hash: str
    tier: str
    url: str
    problem: str


@dataclass
class VerifyReport:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(
    database: Database, settings: Settings, *, sample: int | None = None, tier: str | None = None
) -> VerifyReport:
    """Rehash every recorded blob location (or a random sample) and report corrupt or missing ones."""
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
    return report


@dataclass
class GcReport:
    records_removed: int = 0
    blobs_removed: int = 0
    bytes_removed: int = 0
    temp_removed: int = 0
    roots: list[str] = field(default_factory=list)


def tier_roots(database: Database, settings: Settings) -> dict[str, str]:
    """Every tier root in use: the studio defaults and each project's own, root -> tier name."""
    roots = {root: name for name, root in settings.tier_roots.items()}
    with UnitOfWork(database) as uow:
        for tiers in uow.session.scalars(select(Project.storage_tiers)):
            roots.update({str(root): name for name, root in (tiers or {}).items()})
    return roots


def gc(database: Database, settings: Settings, *, grace_hours: float = 24.0) -> GcReport:
    """Remove blobs no version points to, once older than the grace period.

    Records go first (committed), bytes after: a crash in between leaves bytes without a
    record, which the next gc removes, never a record without bytes. Bytes in a tier that
    no record knows (a crashed ingest's copies) go too, and stale temporary files.
    """
    cutoff = utcnow() - timedelta(hours=grace_hours)
    report = GcReport()
    unreferenced = ~exists().where(RepresentationFile.blob_id == Blob.id)
    with UnitOfWork(database) as uow:
        doomed = uow.session.execute(
            select(Blob.id, Blob.hash, Blob.size, BlobLocation.tier, BlobLocation.url)
            .outerjoin(BlobLocation, BlobLocation.blob_id == Blob.id)
            .where(unreferenced, Blob.created_at < cutoff)
        ).all()
        ids = sorted({row[0] for row in doomed})
        for start in range(0, len(ids), 500):
            # Re-checked in the DELETE itself: a version may have started to use one meanwhile.
            uow.session.execute(delete(Blob).where(Blob.id.in_(ids[start : start + 500]), unreferenced))
        uow.commit()
        report.records_removed = len(ids)
    for _blob_id, digest, size, tier_name, url in doomed:
        if url is not None and blob_store(settings, root_of(url, digest), tier_name).delete(digest):
            report.blobs_removed += 1
            report.bytes_removed += size

    with UnitOfWork(database) as uow:
        recorded = set(uow.session.scalars(select(Blob.hash)))
    horizon = cutoff.timestamp()
    for root, name in tier_roots(database, settings).items():
        store = blob_store(settings, root, name)
        report.roots.append(root)
        for info in list(store.iter_blobs()):
            if info.digest not in recorded and info.mtime < horizon and store.delete(info.digest):
                report.blobs_removed += 1
                report.bytes_removed += info.size
        report.temp_removed += store.purge_temp(older_than=grace_hours * 3600)
    return report


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


def physical(settings: Settings, roots: Iterable[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(tier, root, bytes on the store) by listing each tier."""
    return [(name, root, blob_store(settings, root, name).usage()) for root, name in roots]
