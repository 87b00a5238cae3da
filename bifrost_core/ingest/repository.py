"""Queries of ingest: what a rerun already did, and what unchanged source files hashed to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, Select, String, bindparam, exists, func, select
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.db.bulk import insert_rows
from bifrost_core.ingest.models import IngestFile, IngestRecord
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.versions.models import RepresentationFile, Version

CHUNK = 2000


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# Lookups of thousands of keys: one compiled statement whose IN list is expanded at each
# execution (not a bound parameter object per key), run on the Core connection and fetched
# at once (plain tuples, no ORM loading). 10,000 fingerprints: 0.09 s -> 0.07 s on SQLite.
_FINGERPRINTS = (
    select(IngestFile.path_key, IngestFile.size, IngestFile.mtime_ns, Blob.hash)
    .join(Blob, Blob.id == IngestFile.blob_id)
    .where(
        IngestFile.project_id == bindparam("project"),
        IngestFile.path_key.in_(bindparam("keys", expanding=True)),
    )
)
_RECORDS = (
    select(IngestRecord.key, Version.id, Version.number)
    .join(Version, Version.id == IngestRecord.version_id)
    .where(
        IngestRecord.project_id == bindparam("project"),
        IngestRecord.key.in_(bindparam("keys", expanding=True)),
    )
)
# The blobs not recorded at their content path (`<prefix>ab/<hash>`, see blobstore.blob_key)
# under a tier root: usually none, so the answer is small where a list of every location
# found would be thousands of rows.
_CONTENT_URL = bindparam("prefix", type_=String) + func.substr(Blob.hash, 1, 2) + "/" + Blob.hash
_NOT_LOCATED = select(Blob.hash).where(
    Blob.hash.in_(bindparam("keys", expanding=True)),
    ~exists().where(
        BlobLocation.blob_id == Blob.id,
        BlobLocation.tier == bindparam("tier"),
        BlobLocation.url == _CONTENT_URL,
    ),
)
_PUBLISHED = (
    select(RepresentationFile.published_path, Blob.hash)
    .join(Blob, Blob.id == RepresentationFile.blob_id)
    .where(Blob.hash.in_(bindparam("keys", expanding=True)), RepresentationFile.published_path.is_not(None))
)


def _lookup(session: Session, statement: Select, keys: Sequence[str], **params: Any) -> Iterable[Row[Any]]:
    connection = session.connection()
    for chunk in _chunks(keys):
        yield from connection.execute(statement, {"keys": list(chunk), **params}).all()


def fingerprints(
    session: Session, project_id: int, path_keys: Sequence[str]
) -> dict[str, tuple[int, int, str]]:
    """path key -> (size, mtime_ns, blob hash) recorded by earlier runs."""
    return {
        key: (size, mtime, digest)
        for key, size, mtime, digest in _lookup(session, _FINGERPRINTS, path_keys, project=project_id)
    }


def records(session: Session, project_id: int, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """content key -> (version id, version number) of versions already ingested."""
    return {
        key: (version_id, number)
        for key, version_id, number in _lookup(session, _RECORDS, keys, project=project_id)
    }


def not_located(session: Session, hashes: Sequence[str], tier: str, prefix: str) -> set[str]:
    """Those of `hashes` with a record but no location in `tier` at `<prefix>ab/<hash>`."""
    return {digest for (digest,) in _lookup(session, _NOT_LOCATED, hashes, tier=tier, prefix=prefix)}


def published(session: Session, hashes: Sequence[str]) -> list[tuple[str, str]]:
    """(published path, hash) of every file recorded with one of these blobs."""
    return [(path, digest) for path, digest in _lookup(session, _PUBLISHED, hashes)]


def record_blobs(session: Session, blobs: Sequence[tuple[str, int, str]], tier: str) -> dict[str, int]:
    """Get-or-create Blob rows and their locations in `tier` for (hash, size, url); hash -> id.

    In bulk statements, not ORM objects: a version of thousands of frames registers in
    milliseconds instead of seconds.
    """
    now = utcnow()
    insert_rows(
        session,
        Blob.__table__,
        ("hash", "size", "created_at"),
        ((digest, size, now) for digest, size, _ in blobs),
        conflict=("hash",),
    )
    ids: dict[str, int] = {}
    for chunk in _chunks([digest for digest, _, _ in blobs]):
        ids.update(
            (digest, blob_id)
            for digest, blob_id in session.execute(select(Blob.hash, Blob.id).where(Blob.hash.in_(chunk)))
        )
    insert_rows(
        session,
        BlobLocation.__table__,
        ("blob_id", "tier", "url", "created_at"),
        ((ids[digest], tier, url, now) for digest, _, url in blobs),
        conflict=("blob_id", "tier"),
    )
    return ids


def save_fingerprints(
    session: Session, project_id: int, rows: Iterable[tuple[str, str, int, int, int]]
) -> None:
    """Insert or refresh fingerprints, given as (path_key, path, size, mtime_ns, blob_id)."""
    now = utcnow()
    insert_rows(
        session,
        IngestFile.__table__,
        ("project_id", "path_key", "path", "size", "mtime_ns", "blob_id", "updated_at"),
        ((project_id, *row, now) for row in rows),
        conflict=("project_id", "path_key"),
        update=("path", "size", "mtime_ns", "blob_id", "updated_at"),
    )
