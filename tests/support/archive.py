"""Helpers of the archive tests: versions of real files, a policy, what each tier holds,
and the child process the kill -9 tests run (`python -m tests.support.archive ...`).

    python -m tests.support.archive archive PROJECT [--force]
    python -m tests.support.archive restore VERSION_ID...

Settings come from BIFROST_* (see tests/support/ingest.child_env); BIFROST_TEST_KILL_AT
names the step where the child kills itself (bifrost_core/lifecycle/moves.py, restores.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.lifecycle import policies
from bifrost_core.lifecycle.schemas import PolicyRules
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore, PutResult
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from tests.support.ingest import frames, planned, run_planned

# The child process of the kill -9 tests: `[*CHILD, "archive", PROJECT]`, cwd tests.support.ingest.ROOT.
CHILD = [sys.executable, "-m", "tests.support.archive"]


def three_versions(
    database: Database, settings: Settings, tmp_path: Path, *, shared: bool = False
) -> list[int]:
    """sq010/sh010 plate v1, v2, v3 of 3 frames each (distinct content; with `shared`, frame
    1001 is the same in all three), registered in hot and published; their ids, oldest first."""
    ids = []
    for number in range(1, 4):
        paths = frames(tmp_path / f"src{number}", "plate", 1001, 1003, size=4096, salt=f"v{number}".encode())
        if shared:
            paths[0].write_bytes(b"the same first frame" * 200)
        run_planned(database, settings, [planned(paths)])
    with UnitOfWork(database) as uow:
        ids = list(uow.session.scalars(select(Version.id).order_by(Version.number)))
    return ids


def set_policy(database: Database, settings: Settings, project_id: int, **rules: object) -> None:
    with UnitOfWork(database) as uow:
        policies.set_policy(
            uow.session, settings, actor=SYSTEM, project_id=project_id, rules=PolicyRules(**rules)
        )
        uow.commit()


def age(database: Database, version_ids: list[int], days: float) -> None:
    """Make versions `days` old."""
    with UnitOfWork(database) as uow:
        uow.session.execute(
            update(Version)
            .where(Version.id.in_(version_ids))
            .values(created_at=utcnow() - timedelta(days=days))
        )
        uow.commit()


def blobs_of(database: Database, version_id: int) -> set[str]:
    with UnitOfWork(database) as uow:
        return set(
            uow.session.scalars(
                select(Blob.hash)
                .join(RepresentationFile, RepresentationFile.blob_id == Blob.id)
                .join(Representation, Representation.id == RepresentationFile.representation_id)
                .where(Representation.version_id == version_id)
            )
        )


def tiers_of(database: Database, digest: str) -> dict[str, str]:
    """tier -> URL of each recorded location of a blob."""
    with UnitOfWork(database) as uow:
        return dict(
            uow.session.execute(
                select(BlobLocation.tier, BlobLocation.url)
                .join(Blob, Blob.id == BlobLocation.blob_id)
                .where(Blob.hash == digest)
            ).all()
        )


def good_copies(settings: Settings, database: Database, digest: str) -> list[str]:
    """The tiers whose recorded copy of the blob is there with the right bytes."""
    from bifrost_core.ingest.roots import blob_store
    from bifrost_core.storage.blobstore import root_of

    return sorted(
        tier
        for tier, url in tiers_of(database, digest).items()
        if blob_store(settings, root_of(url, digest), tier).rehash(digest) == digest
    )


def published_paths(database: Database, settings: Settings, version_id: int) -> list[Path]:
    """The published paths of a version's files under the hot tier's publish folder."""
    with UnitOfWork(database) as uow:
        rels = uow.session.scalars(
            select(RepresentationFile.published_path)
            .join(Representation, Representation.id == RepresentationFile.representation_id)
            .where(Representation.version_id == version_id)
        )
        return [Path(settings.tier_roots["hot"]) / "published" / rel for rel in rels]


def store_of(settings: Settings, tier: str) -> BlobStore:
    from bifrost_core.ingest.roots import blob_store

    return blob_store(settings, settings.tier_roots[tier], tier)


def corrupt_on_arrival(monkeypatch: Any, victim: str, corrupt: Callable[[], None]) -> None:
    """Call `corrupt` the first time a store reports the blob `victim` stored, before anyone
    can read it back: the copy's bytes changed on the way (a bad link, a bad disk)."""
    real = BlobStore.put_files
    done: list[str] = []

    def put_files(self: BlobStore, sources: Any, *, on_stored: Any = None, **options: Any) -> Any:
        def stored(result: PutResult) -> None:
            if result.digest == victim and not done:
                done.append(victim)
                corrupt()
            if on_stored is not None:
                on_stored(result)

        return real(self, sources, on_stored=stored, **options)

    monkeypatch.setattr(BlobStore, "put_files", put_files)


def main(argv: list[str]) -> int:
    from bifrost_core.config import load_settings
    from bifrost_core.lifecycle import moves, restores

    settings = load_settings()
    database = Database(settings.database)
    try:
        if argv[0] == "archive":
            moves.archive_project(database, settings, actor=SYSTEM, project=argv[1], force="--force" in argv)
        else:
            restores.restore_versions(
                database, settings, actor=SYSTEM, version_ids=[int(v) for v in argv[1:]]
            )
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
