"""Fixtures of the storage tests: a real S3 endpoint (moto's server), stores, source trees."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bifrost_core.storage.blobstore import BlobStore
from tests.support.s3 import S3Endpoint, running_s3


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """moto's S3 server on a free loopback port, with one bucket; see tests/support/s3.py."""
    with running_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint) -> BlobStore:
    """A blob store on S3 under a prefix of its own, so tests never see each other's blobs."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return BlobStore(s3_endpoint.url(prefix), storage_options=s3_endpoint.storage_options, name="s3")


@pytest.fixture
def local_store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "tier", name="hot")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    """The same tests on a local folder and on S3."""
    name = "local_store" if request.param == "local" else "s3_store"
    return request.getfixturevalue(name)


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a source file under tmp_path/src: make_file("a/b.exr", b"bytes") -> its path."""
    root = tmp_path / "src"

    def make(rel: str, data: bytes | int = b"") -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(data) if isinstance(data, int) else data)
        return path

    return make
