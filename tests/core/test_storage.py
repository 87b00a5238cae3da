"""Blob records: register_blobs is get-or-create, safe to call again (reruns)."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bifrost_core.storage import service as storage
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.schemas import BlobIn


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def blob_in(content: bytes, tier: str = "hot") -> BlobIn:
    return BlobIn(hash=digest(content), size=len(content), tier=tier, url=f"/{tier}/{digest(content)}")


def counts(session) -> tuple[int, int]:
    return session.scalar(select(func.count(Blob.id))), session.scalar(select(func.count(BlobLocation.id)))


def test_register_blobs_is_idempotent(session):
    blobs = [blob_in(b"a"), blob_in(b"b")]
    first = storage.register_blobs(session, blobs)
    assert set(first) == {digest(b"a"), digest(b"b")}
    again = storage.register_blobs(session, blobs)
    assert again == first
    assert counts(session) == (2, 2)


def test_register_blobs_adds_new_blobs_and_tiers_only(session):
    ids = storage.register_blobs(session, [blob_in(b"a")])
    more = storage.register_blobs(session, [blob_in(b"a", "archive"), blob_in(b"c"), blob_in(b"c")])
    assert more[digest(b"a")] == ids[digest(b"a")]
    assert counts(session) == (2, 3)
    tiers = session.scalars(select(BlobLocation.tier).where(BlobLocation.blob_id == ids[digest(b"a")]))
    assert sorted(tiers) == ["archive", "hot"]
    assert session.get(Blob, more[digest(b"c")]).size == 1


def test_register_no_blobs(session):
    assert storage.register_blobs(session, []) == {}


@pytest.mark.parametrize(
    "fields",
    [{"hash": "xyz"}, {"hash": "A" * 64}, {"size": -1}, {"tier": ""}, {"url": ""}, {"extra": 1}],
)
def test_blob_input_is_validated(fields):
    good = {"hash": "a" * 64, "size": 1, "tier": "hot", "url": "/x"}
    with pytest.raises(ValidationError):
        BlobIn(**{**good, **fields})
