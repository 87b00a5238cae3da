"""What ingest takes from the tier is checked, not trusted, and what went missing is stored again.

- `reusable`: a file whose hash is known from its fingerprint and recorded in the tier is
  not read again, once its blob is rehashed; a missing or damaged one is stored again
  from the source. Local tiers only: on an object store the put itself checks what is
  there (by ETag, from the source read locally, cheaper than downloading the blob).
- `restore_missing`: once a batch's blobs are leased (storage/leases.py), any of them that
  a concurrent `storage gc` removed before the lease is stored again from its source.
- `relink_published`: a repaired blob is a new file; its published hard links are moved to it.
- `mark_missing`: at planning, a version already ingested whose blobs went from the tier
  is marked, so that the run stores them again instead of skipping the version.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import repository
from bifrost_core.ingest.schemas import PlannedVersion, Problem, SourceFile, StoreResult
from bifrost_core.storage.blobstore import BlobStore, root_of
from bifrost_core.storage.errors import PutFailed
from bifrost_core.storage.paths import relink


def _recorded_here(session: Session, store: BlobStore, tier: str, hashes: Sequence[str]) -> list[str]:
    """Those of `hashes` recorded in `tier` at this store's root (or not recorded at all:
    they came from records that gc may have removed since, and each is checked anyway)."""
    sample = hashes[0]
    prefix = f"{root_of(store.url_for(sample), sample)}/blobs/"
    elsewhere = repository.not_located(session, hashes, tier, prefix)
    return [digest for digest in hashes if digest not in elsewhere]


def reusable(
    database: Database, store: BlobStore, tier: str, files: Sequence[SourceFile], *, workers: int
) -> tuple[dict[str, str], set[str]]:
    """hash -> URL of the recorded blobs that `files` may reuse, rehashed (`workers` at a
    time); and the hashes recorded in the tier whose blob is missing or damaged."""
    known = sorted({file.hash for file in files if file.hash})
    if not known or not store.is_local:
        return {}, set()
    with UnitOfWork(database) as uow:
        recorded = _recorded_here(uow.session, store, tier, known)
    bad = store.damaged(recorded, workers=workers)
    return {digest: store.url_for(digest) for digest in recorded if digest not in bad}, bad


def restore_missing(store: BlobStore, stored: StoreResult, *, workers: int) -> None:
    """Store again, from its source, each blob of `stored` the tier no longer holds; a source
    that fails or no longer holds the same bytes drops its files from `stored.blobs`, with a
    problem each."""
    gone = store.missing({blob.hash for blob in stored.blobs.values()}, workers=workers)
    if not gone:
        return
    sources: dict[str, str] = {}
    for path, blob in stored.blobs.items():
        if blob.hash in gone:
            sources.setdefault(blob.hash, path)
    try:
        again = store.put_files(list(sources.values()), workers=workers)
    except PutFailed as exc:
        again = exc.stored
        for failure in exc.failures:
            _drop(stored, stored.blobs[failure.path].hash, failure.reason)
    for blob in again:
        expected = stored.blobs[str(blob.source)].hash
        if blob.new:
            stored.files_copied += 1
            stored.bytes_copied += blob.size
        if blob.digest == expected:
            stored.repaired.add(expected)
        else:
            _drop(stored, expected, "changed while being ingested; run the ingest again")


def _drop(stored: StoreResult, digest: str, reason: str) -> None:
    for path in [path for path, blob in stored.blobs.items() if blob.hash == digest]:
        del stored.blobs[path]
        stored.problems.append(Problem(path=path, message=f"its stored copy went missing: {reason}"))


def relink_published(database: Database, store: BlobStore, hashes: set[str]) -> None:
    """Move the published hard links of repaired blobs to their new files (local tiers)."""
    if not hashes or not store.is_local:
        return
    with UnitOfWork(database) as uow:
        files = repository.published(uow.session, sorted(hashes))
    relink(store, files)


def mark_missing(
    session: Session, store: BlobStore, tier: str, versions: Sequence[PlannedVersion], *, workers: int
) -> None:
    """Set `missing` on each known version: how many of its blobs recorded in the tier are
    not there (one stat or HEAD per blob)."""
    known = [version for version in versions if version.status == "known"]
    hashes = sorted({file.hash for version in known for file in version.files if file.hash})
    if not hashes:
        return
    gone = store.missing(_recorded_here(session, store, tier, hashes), workers=workers)
    for version in known:
        version.missing = len({file.hash for file in version.files} & gone)
