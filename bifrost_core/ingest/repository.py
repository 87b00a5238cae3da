"""Queries of ingest: what a rerun already did, and what unchanged source files hashed to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.ingest.models import IngestFile, IngestRecord
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.versions.models import Representation, RepresentationFile, Version

CHUNK = 2000


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def fingerprints(
    session: Session, project_id: int, path_keys: Sequence[str]
) -> dict[str, tuple[int, int, str]]:
    """path key -> (size, mtime_ns, blob hash) recorded by earlier runs."""
    found: dict[str, tuple[int, int, str]] = {}
    for chunk in _chunks(path_keys):
        rows = session.execute(
            select(IngestFile.path_key, IngestFile.size, IngestFile.mtime_ns, Blob.hash)
            .join(Blob, Blob.id == IngestFile.blob_id)
            .where(IngestFile.project_id == project_id, IngestFile.path_key.in_(chunk))
        )
        found.update((key, (size, mtime, digest)) for key, size, mtime, digest in rows)
    return found


def records(session: Session, project_id: int, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """content key -> (version id, version number) of versions already ingested."""
    found: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(keys):
        rows = session.execute(
            select(IngestRecord.key, Version.id, Version.number)
            .join(Version, Version.id == IngestRecord.version_id)
            .where(IngestRecord.project_id == project_id, IngestRecord.key.in_(chunk))
        )
        found.update((key, (version_id, number)) for key, version_id, number in rows)
    return found


def located(session: Session, hashes: Sequence[str], tier: str) -> dict[str, str]:
    """hash -> URL for the blobs recorded in a tier (their bytes need no second copy)."""
    found: dict[str, str] = {}
    for chunk in _chunks(hashes):
        rows = session.execute(
            select(Blob.hash, BlobLocation.url)
            .join(BlobLocation, BlobLocation.blob_id == Blob.id)
            .where(Blob.hash.in_(chunk), BlobLocation.tier == tier)
        )
        found.update(rows.all())
    return found


def _insert(session: Session):
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert


def record_blobs(session: Session, blobs: Sequence[tuple[str, int, str]], tier: str) -> dict[str, int]:
    """Get-or-create Blob rows and their locations in `tier` for (hash, size, url); hash -> id.

    The same as storage.service.register_blobs, in bulk statements instead of ORM objects:
    a version of thousands of frames registers in milliseconds instead of seconds.
    """
    insert = _insert(session)
    now = utcnow()
    for chunk in _chunks(blobs):
        session.execute(
            insert(Blob).on_conflict_do_nothing(index_elements=[Blob.hash]),
            [{"hash": digest, "size": size, "created_at": now} for digest, size, _ in chunk],
        )
    ids: dict[str, int] = {}
    for chunk in _chunks([digest for digest, _, _ in blobs]):
        ids.update(
            (digest, blob_id)
            for digest, blob_id in session.execute(select(Blob.hash, Blob.id).where(Blob.hash.in_(chunk)))
        )
    for chunk in _chunks(blobs):
        session.execute(
            insert(BlobLocation).on_conflict_do_nothing(
                index_elements=[BlobLocation.blob_id, BlobLocation.tier]
            ),
            [
                {"blob_id": ids[digest], "tier": tier, "url": url, "created_at": now}
                for digest, _, url in chunk
            ],
        )
    return ids


def add_files(session: Session, representation: Representation, files: Sequence[dict[str, Any]]) -> None:
    """Insert a representation's file rows (representation_id, blob_id, name, frame) in bulk."""
    for chunk in _chunks(files):
        session.execute(
            RepresentationFile.__table__.insert(),
            [{**row, "representation_id": representation.id} for row in chunk],
        )


def save_fingerprints(session: Session, project_id: int, rows: list[dict[str, Any]]) -> None:
    """Insert or refresh fingerprints; rows carry path_key, path, size, mtime_ns, blob_id."""
    if not rows:
        return
    now = utcnow()
    stmt = _insert(session)(IngestFile)
    stmt = stmt.on_conflict_do_update(
        index_elements=[IngestFile.project_id, IngestFile.path_key],
        set_={
            "path": stmt.excluded.path,
            "size": stmt.excluded.size,
            "mtime_ns": stmt.excluded.mtime_ns,
            "blob_id": stmt.excluded.blob_id,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    session.execute(stmt, [{**row, "project_id": project_id, "updated_at": now} for row in rows])
