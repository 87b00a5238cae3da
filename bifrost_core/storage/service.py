"""Recording stored blobs and their locations (the bytes themselves live in the blob store)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.schemas import BlobIn


def register_blobs(session: Session, blobs: Iterable[BlobIn]) -> dict[str, int]:
    """Get-or-create Blob rows and their locations in bulk; returns hash -> blob id.

    Call only once the bytes are durable in the tier: a row must never point at
    content that a crash could lose.
    """
    wanted = {blob.hash: blob for blob in blobs}
    ids: dict[str, int] = {}
    hashes = list(wanted)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        ids.update(session.execute(select(Blob.hash, Blob.id).where(Blob.hash.in_(chunk))).all())
    new = [Blob(hash=blob.hash, size=blob.size) for h, blob in wanted.items() if h not in ids]
    session.add_all(new)
    session.flush()
    ids.update((blob.hash, blob.id) for blob in new)

    located: set[tuple[int, str]] = set()
    blob_ids = [ids[h] for h in hashes]
    for start in range(0, len(blob_ids), 500):
        chunk = blob_ids[start : start + 500]
        located.update(
            session.execute(
                select(BlobLocation.blob_id, BlobLocation.tier).where(BlobLocation.blob_id.in_(chunk))
            ).all()
        )
    session.add_all(
        BlobLocation(blob_id=ids[h], tier=blob.tier, url=blob.url)
        for h, blob in wanted.items()
        if (ids[h], blob.tier) not in located
    )
    session.flush()
    return ids
