"""Restoring archived versions to the hot tier (the archive move is moves.py).

A restore is the same in the other direction, and keeps the archive copy: stage the
archive copy (read and rehashed: a damaged one is named, never restored), store it in hot,
read back and rehash the hot copy, record it and the version as restored, then point the
published paths at the hot blobs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from bifrost_core.codes import project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import Conflict, DamagedContent, NotFound
from bifrost_core.ingest.batches import crash_point
from bifrost_core.ingest.roots import copy_workers, tier_root, usable_store
from bifrost_core.lifecycle.models import ArchivedVersion, RestoreRequest
from bifrost_core.lifecycle.moves import (
    HOT,
    digest_of,
    hot_location,
    record_verified,
    staged_copies,
    version_event,
)
from bifrost_core.projects.models import Project
from bifrost_core.scope import Actor
from bifrost_core.storage.blobstore import BlobStore, root_of
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.paths import materialise
from bifrost_core.users import permissions
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from bifrost_core.versions.repository import VersionRepository


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
            .where(Representation.version_id == version_id, ~hot_location())
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
        with staged_copies(source, digests) as (staged, unreadable):
            damaged.extend(f"{digest} ({why})" for digest, why in sorted(unreadable.items()))
            if staged:
                results = hot.put_files([staged[d] for d in sorted(staged)], workers=copy_workers(hot))
                for result in results:
                    expected = digest_of(staged, result.source)
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
        record_verified(uow.session, HOT, [(ids[d], hot.url_for(d)) for d in needed], now)
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
            version_event(
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
        version_event(
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
