"""What only the S3 tier does: uploads straight to content keys (large files through a
local spool, stable ones from their file), multipart uploads, ETag verification, errors of
the store. Against moto's server over real HTTP (fixture `s3_endpoint`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import boto3
import pytest

from bifrost_core.errors import ConfigError
from bifrost_core.storage.blobstore import BlobStore, MiB
from bifrost_core.storage.blobstore import s3 as s3_tier
from bifrost_core.storage.blobstore.source import Source
from bifrost_core.storage.errors import StorageError, VerificationFailed
from tests.support.s3 import S3Endpoint
from tests.support.services import free_port

MakeFile = Callable[..., Path]


@pytest.fixture
def s3(s3_endpoint: S3Endpoint) -> Any:
    return boto3.client("s3", **s3_endpoint.client_kwargs())


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def store_prefix(store: BlobStore) -> str:
    return store.root.split("/", 3)[3] + "/"


def test_small_files_go_straight_to_their_key(
    s3_store: BlobStore, make_file: MakeFile, s3: Any, s3_endpoint: S3Endpoint
) -> None:
    blob = s3_store.put_file(make_file("a.exr", b"pixels"))
    prefix = store_prefix(s3_store)
    assert blob.url == f"s3://{s3_endpoint.bucket}/{prefix}blobs/{blob.digest[:2]}/{blob.digest}"
    assert keys(s3, s3_endpoint.bucket, prefix) == [blob.url.split("/", 3)[3]]
    assert not s3_store.is_local


@pytest.fixture
def large_puts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list[str]]:
    """Files above 64 KiB count as large, spooled (if at all) under the returned folder; the
    S3 calls the tier makes are recorded in the returned list."""
    monkeypatch.setattr(s3_tier, "SMALL_FILE", 64 * 1024)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    calls: list[str] = []
    real_call = s3_tier.S3Tier._call

    def recording(self: s3_tier.S3Tier, method: str, **kwargs: Any) -> Any:
        calls.append(method)
        return real_call(self, method, **kwargs)

    monkeypatch.setattr(s3_tier.S3Tier, "_call", recording)
    return spool, calls


def test_large_files_go_through_a_spool_straight_to_their_key(
    s3_store: BlobStore,
    make_file: MakeFile,
    s3: Any,
    s3_endpoint: S3Endpoint,
    large_puts: tuple[Path, list[str]],
) -> None:
    spool, calls = large_puts
    data = os.urandom(1 * MiB + 5)
    blob = s3_store.put_file(make_file("big.mov", data))
    assert blob.digest == blake3.blake3(data).hexdigest() and blob.new
    # One object, at its content key: no temporary key was written and copied.
    assert keys(s3, s3_endpoint.bucket, store_prefix(s3_store)) == [blob.url.split("/", 3)[3]]
    body = s3.get_object(Bucket=s3_endpoint.bucket, Key=blob.url.split("/", 3)[3])["Body"].read()
    assert body == data
    assert list(spool.iterdir()) == []  # the spool file is gone
    assert calls == ["head_object", "put_object"]  # no temporary key, no server-side copy


def test_stable_sources_go_straight_from_their_file_to_their_key(
    s3_store: BlobStore,
    make_file: MakeFile,
    s3: Any,
    s3_endpoint: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    large_puts: tuple[Path, list[str]],
) -> None:
    _spool, calls = large_puts
    monkeypatch.setattr(tempfile, "TemporaryFile", None)  # no spool at all
    data = os.urandom(1 * MiB + 5)
    stored: list[str] = []
    (blob,) = s3_store.put_files(
        [make_file("big.mov", data)], stable=True, on_stored=lambda result: stored.append(result.digest)
    )
    assert blob.digest == blake3.blake3(data).hexdigest() and blob.new and stored == [blob.digest]
    assert keys(s3, s3_endpoint.bucket, store_prefix(s3_store)) == [blob.url.split("/", 3)[3]]
    body = s3.get_object(Bucket=s3_endpoint.bucket, Key=blob.url.split("/", 3)[3])["Body"].read()
    assert body == data
    assert calls == ["head_object", "put_object"]
    assert s3_store.rehash(blob.digest) == blob.digest
    assert not s3_store.put_files([make_file("again.mov", data)], stable=True)[0].new


def _rewritten_after_hashing(monkeypatch: pytest.MonkeyPatch, path: Path, data: bytes) -> None:
    """Give `path` other bytes of the same size and mtime once it was hashed (before the
    upload's HEAD): a change the size and mtime checks cannot see."""
    real_head = s3_tier.S3Tier._head
    done: list[bool] = []

    def head(self: s3_tier.S3Tier, key: str) -> Any:
        if not done:
            done.append(True)
            seen = path.stat()
            path.write_bytes(data)
            os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns))
        return real_head(self, key)

    monkeypatch.setattr(s3_tier.S3Tier, "_head", head)


def test_a_stable_source_changed_after_hashing_is_not_stored_under_the_old_digest(
    s3_store: BlobStore,
    make_file: MakeFile,
    s3: Any,
    s3_endpoint: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3_tier, "SMALL_FILE", 64 * 1024)
    path = make_file("plate.mov", 200 * 1024)
    _rewritten_after_hashing(monkeypatch, path, os.urandom(200 * 1024))
    # S3 refuses the body by its Content-MD5; moto takes it, and the ETag check removes it.
    with pytest.raises(StorageError, match=r"storage tier s3: .*plate\.mov"):
        s3_store.put_files([path], stable=True)
    assert keys(s3, s3_endpoint.bucket, store_prefix(s3_store)) == []


def test_a_stable_source_changed_between_the_reads_of_a_multipart_upload_is_stored_again(
    s3_endpoint: S3Endpoint, make_file: MakeFile, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(
        s3_endpoint.url("multipart-stable"),
        storage_options=s3_endpoint.storage_options,
        part_size=5 * MiB,
        multipart_threshold=6 * MiB,
    )
    path = make_file("huge.mxf", 11 * MiB)
    new = os.urandom(11 * MiB)
    _rewritten_after_hashing(monkeypatch, path, new)
    # The parts sent do not hash to the digest read first: the upload is dropped and the
    # source read again, so only its new content is stored, under its own digest.
    (blob,) = store.put_files([path], stable=True)
    assert blob.digest == blake3.blake3(new).hexdigest()
    assert keys(s3, s3_endpoint.bucket, "multipart-stable/") == [blob.url.split("/", 3)[3]]
    uploads = s3.list_multipart_uploads(Bucket=s3_endpoint.bucket, Prefix="multipart-stable/")
    assert uploads.get("Uploads", []) == []
    assert store.rehash(blob.digest) == blob.digest


def test_multipart_upload_above_the_threshold(
    s3_endpoint: S3Endpoint, make_file: MakeFile, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(
        s3_endpoint.url("multipart"),
        storage_options=s3_endpoint.storage_options,
        part_size=5 * MiB,  # S3's smallest part
        multipart_threshold=6 * MiB,
    )
    data = os.urandom(11 * MiB + 123)
    read = [0]
    real = Source.readinto

    def counting(self: Source, buf: memoryview) -> int:
        n = real(self, buf)
        read[0] += n
        return n

    monkeypatch.setattr(Source, "readinto", counting)
    blob = store.put_file(make_file("huge.mxf", data))
    assert read[0] == len(data)
    assert blob.digest == blake3.blake3(data).hexdigest() and blob.new
    assert store.rehash(blob.digest) == blob.digest
    assert keys(s3, s3_endpoint.bucket, "multipart/") == [blob.url.split("/", 3)[3]]
    assert s3.list_multipart_uploads(Bucket=s3_endpoint.bucket, Prefix="multipart/").get("Uploads", []) == []
    assert not store.put_file(make_file("again.mxf", data)).new


_md5 = hashlib.md5


class _WrongMd5:
    """An MD5 that disagrees with what was sent, as if the upload was corrupted."""

    def __init__(self, data: bytes = b"") -> None:
        self._h = _md5(b"corrupted in transit" + bytes(data))

    def update(self, data: Any) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@pytest.mark.parametrize("size", [100, 200 * 1024])
def test_upload_that_fails_verification_is_not_kept(
    s3_store: BlobStore,
    make_file: MakeFile,
    s3: Any,
    s3_endpoint: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    monkeypatch.setattr(s3_tier, "SMALL_FILE", 64 * 1024)
    monkeypatch.setattr(hashlib, "md5", _WrongMd5)
    with pytest.raises(
        VerificationFailed, match=r"storage tier s3: upload of .*plate\.exr failed verification"
    ):
        s3_store.put_file(make_file("plate.exr", size))
    assert keys(s3, s3_endpoint.bucket, store_prefix(s3_store)) == []


def test_missing_bucket_is_a_configuration_error(s3_endpoint: S3Endpoint, make_file: MakeFile) -> None:
    # No retry brings a bucket back: not a StorageError (503, retried as transient).
    store = BlobStore("s3://no-such-bucket/x", storage_options=s3_endpoint.storage_options, name="archive")
    with pytest.raises(ConfigError, match="storage tier archive: bucket no-such-bucket does not exist"):
        store.put_file(make_file("a", b"a"))
    with pytest.raises(ConfigError) as caught:
        store.check()
    assert (
        str(caught.value)
        == "storage tier archive: bucket no-such-bucket does not exist (s3://no-such-bucket/x)"
    )


def test_check_takes_an_empty_prefix_and_leaves_nothing(s3_endpoint: S3Endpoint, s3: Any) -> None:
    prefix = f"empty-{os.getpid()}"
    store = BlobStore(s3_endpoint.url(prefix), storage_options=s3_endpoint.storage_options, name="hot")
    store.check()  # nothing under the prefix yet: still a usable root
    assert keys(s3, s3_endpoint.bucket, prefix) == []


def test_unreachable_endpoint_is_a_storage_error(make_file: MakeFile) -> None:
    options = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "key": "k",
        "secret": "s",
        "retries": 1,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = BlobStore("s3://bucket/x", storage_options=options, name="cloud")
    with pytest.raises(StorageError, match="storage tier cloud"):
        store.put_file(make_file("a", b"a"))
    with pytest.raises(StorageError, match="storage tier cloud"):
        store.exists("0" * 64)
    with pytest.raises(StorageError, match="storage tier cloud: checking s3://bucket/x"):
        store.check()  # a store that cannot be reached is not a configuration error


def test_purge_temp_aborts_stale_uploads(s3_store: BlobStore, s3: Any, s3_endpoint: S3Endpoint) -> None:
    prefix = store_prefix(s3_store)
    s3.create_multipart_upload(Bucket=s3_endpoint.bucket, Key=f"{prefix}blobs/ab/{'ab' * 32}")
    # moto reports every multipart upload as initiated in 2010: the cutoff must be in the
    # future for this one to be stale, and a recent cutoff keeps it (it may be running).
    assert s3_store.purge_temp(older_than=20 * 365 * 86400).removed == 0
    # An upload to a key that is not a blob's was not started by the store: left alone.
    foreign = s3.create_multipart_upload(Bucket=s3_endpoint.bucket, Key=f"{prefix}blobs/ab/notes.txt")
    swept = s3_store.purge_temp(older_than=-60)
    assert swept.removed == 1
    assert swept.skipped == [
        f"upload {foreign['UploadId']} to s3://{s3_endpoint.bucket}/{prefix}blobs/ab/notes.txt: not a blob"
    ]
    uploads = s3.list_multipart_uploads(Bucket=s3_endpoint.bucket, Prefix=prefix).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [f"{prefix}blobs/ab/notes.txt"]
