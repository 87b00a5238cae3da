"""The S3 tier (s3fs): every blob goes straight to its final key, verified by S3 against
the Content-MD5 sent and by the ETag returned.

Small files are hashed in memory. Larger ones are copied once from the source into an
unnamed local spool file (O_TMPFILE: it vanishes with the process), hashed on the way, then uploaded
from the spool in one PUT, or in parts above `multipart_threshold`. Knowing the digest
before the upload spares the temporary key and the server-side copy, which cost the store
a second write. A stable source (another tier's blob, which nothing rewrites) skips the
spool: it is hashed, then sent from the file itself with the MD5 of that first read. A blob
found at its key is reused once its ETag matches the MD5 of the bytes read. Blobs are read
back in one streamed GET each.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

import blake3
import fsspec
import fsspec.asyn

from bifrost_core.errors import ConfigError
from bifrost_core.storage.blobstore.objects import ObjectTier
from bifrost_core.storage.blobstore.source import Source
from bifrost_core.storage.blobstore.tier import (
    CHUNK,
    DIGEST,
    SMALL_FILE,
    TEMP_MARK,
    BlobInfo,
    GiB,
    PutResult,
    Swept,
    blob_key,
    unwritable,
)
from bifrost_core.storage.errors import (
    SourceChanged,
    StorageError,
    StorageFull,
    VerificationFailed,
    storage_error,
)

# S3 refuses a single PUT above 5 GiB and more than 10,000 parts.
_S3_MAX_SINGLE = 5 * GiB
_S3_MAX_PARTS = 10_000


def s3_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Tune s3fs for streaming uploads unless the caller chose otherwise.

    Without these, botocore reads each body twice over plain HTTP (to sign its SHA-256)
    and adds its own checksum pass; the store verifies uploads by MD5/ETag instead.
    """
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("request_checksum_calculation", "when_required")
    config["s3"] = {"payload_signing_enabled": False, **(config.get("s3") or {})}
    return {**options, "config_kwargs": config}


def _b64(md5: bytes) -> str:
    """A Content-MD5 header value."""
    return base64.b64encode(md5).decode()


def _etag(response: Mapping[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


class S3Tier(ObjectTier):
    """S3 through s3fs's botocore client: PUTs (or multipart uploads) straight to each
    blob's content key, from memory for small files and from a local spool for the others."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        name: str,
        part_size: int,
        multipart_threshold: int,
    ) -> None:
        super().__init__(fs, path, name, part_size)
        bucket, _, prefix = self.base.partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.multipart_threshold = min(multipart_threshold, _S3_MAX_SINGLE)

    def key(self, digest: str) -> str:
        return f"{self.prefix}{blob_key(digest)}"

    def _call(self, method: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One S3 call; None for a missing key if `missing_ok`, else errors become StorageError."""
        try:
            with self._guard(f"{method} {kwargs.get('Key', '')}".rstrip()):
                return self.fs.call_s3(method, Bucket=self.bucket, **kwargs)
        except StorageError as exc:
            if missing_ok and isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise

    def _head(self, key: str) -> dict[str, Any] | None:
        return self._call("head_object", Key=key, missing_ok=True)

    @staticmethod
    def _judge(
        head: Mapping[str, Any] | None, md5: str, size: int, multipart: Callable[[], str] | None = None
    ) -> tuple[bool, bool]:
        """(reuse, damaged) for the object a HEAD found, given the MD5 and size of the bytes
        to store: a single-part upload's ETag is the MD5 of its bytes, a multipart one's is
        what `multipart` computes, if the parts were cut as this store cuts them. An ETag
        that cannot be checked (an encrypted object's, parts cut otherwise) means the bytes
        are uploaded again, not counted as damaged."""
        if head is None:
            return False, False
        if int(head["ContentLength"]) != size:
            return False, True
        etag = _etag(head)
        if str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or "SSECustomerAlgorithm" in head:
            return False, False
        if "-" in etag:
            return (multipart is not None and multipart() == etag), False
        return etag == md5, etag != md5

    def _part_size(self, size: int) -> int:
        return max(self.part_size, -(-size // _S3_MAX_PARTS))

    def _multipart_etag(self, spool: BinaryIO, size: int, source: str) -> str:
        """The ETag a multipart upload of the spool by `_put_parts` gets: it reads the spool again."""
        part_size = self._part_size(size)
        md5s = []
        spool.seek(0)
        with self._spooling(source):
            for offset in range(0, size, part_size):
                md5, left = hashlib.md5(), min(part_size, size - offset)
                while left > 0 and (chunk := spool.read(min(CHUNK, left))):
                    md5.update(chunk)
                    left -= len(chunk)
                md5s.append(md5.digest())
        return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"

    def _discard_key(self, key: str) -> None:
        with contextlib.suppress(Exception):  # best effort; purge_temp collects leftovers
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=key)

    def put_once(self, src: Source) -> PutResult | None:
        if src.size <= SMALL_FILE:
            return self._put_small(src)
        return self._put_stable(src) if src.stable else self._put_spooled(src)

    def _put_small(self, src: Source) -> PutResult | None:
        data = src.read_all()
        if src.changed(len(data)):
            return None
        digest = blake3.blake3(data).hexdigest()
        key = self.key(digest)
        url = self.url(digest)
        md5 = hashlib.md5(data)
        reuse, damaged = self._judge(self._head(key), md5.hexdigest(), len(data))
        if reuse:
            return PutResult(src.path, digest, len(data), url, False)
        # A PUT is atomic and S3 rejects a body that does not match Content-MD5.
        response = self._call("put_object", Key=key, Body=data, ContentMD5=_b64(md5.digest()))
        self._verify(response, md5.hexdigest(), key, digest, src.path)
        return PutResult(src.path, digest, len(data), url, True, damaged)

    def _put_spooled(self, src: Source) -> PutResult | None:
        with self._spool_file(src.path) as spool:
            blake, md5 = blake3.blake3(), hashlib.md5()
            total = 0
            for chunk in src.chunks(self._buffer()):
                blake.update(chunk)
                md5.update(chunk)
                with self._spooling(src.path):
                    spool.write(chunk)
                total += len(chunk)
            if src.changed(total):
                return None
            return self._put_from(spool, src.path, blake.hexdigest(), md5.digest(), total)

    def _put_stable(self, src: Source) -> PutResult | None:
        """A source nothing writes to (another tier's blob) is read twice instead of spooled:
        hashed, then sent from the file itself with the Content-MD5 of the first read, so the
        store refuses (and the ETag check catches) bytes that differ from those hashed."""
        blake, md5 = blake3.blake3(), hashlib.md5()
        total = 0
        for chunk in src.chunks(self._buffer()):
            blake.update(chunk)
            md5.update(chunk)
            total += len(chunk)
        if src.changed(total):
            return None
        return self._put_from(_SourceBody(src, total), src.path, blake.hexdigest(), md5.digest(), total)

    def _put_from(self, body: BinaryIO, source: str, digest: str, md5: bytes, total: int) -> PutResult | None:
        """Store the `total` bytes of `body` (a spool, or a stable source), which hashed to
        `digest` and `md5` when read, at their content key, unless an object there holds
        them; None if they do not read again as they did (the caller reads the source again)."""
        key = self.key(digest)
        url = self.url(digest)
        reuse, damaged = self._judge(
            self._head(key), md5.hex(), total, functools.partial(self._multipart_etag, body, total, source)
        )
        if reuse:
            return PutResult(source, digest, total, url, False)
        if total <= self.multipart_threshold:
            body.seek(0)
            response = self._call("put_object", Key=key, Body=body, ContentLength=total, ContentMD5=_b64(md5))
            self._verify(response, md5.hex(), key, digest, source)
        elif not self._put_parts(body, key, total, digest, source):
            return None
        return PutResult(source, digest, total, url, True, damaged)

    def _spool_file(self, source: str) -> BinaryIO:
        with self._spooling(source):
            return tempfile.TemporaryFile(prefix="bifrost-spool-")

    @contextlib.contextmanager
    def _spooling(self, source: str) -> Iterator[None]:
        """Failures of the local spool, told apart from the store's: the tier is not full."""
        try:
            yield
        except OSError as exc:
            message = f"storage tier {self.name}: cannot spool {source} in {tempfile.gettempdir()}"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message += f": {exc.strerror}; set TMPDIR to a folder with room for the largest files"
                raise StorageFull(message, tier=self.name) from exc
            raise StorageError(f"{message}: {exc.strerror or exc}", tier=self.name) from exc

    def _put_parts(self, spool: BinaryIO, key: str, size: int, digest: str, source: str) -> bool:
        """A multipart upload from the spool (or a stable source) to the content key, each
        part checked by its Content-MD5, the whole by the ETag; the object appears only once
        completed, and only if the parts sent hash to `digest` (else False: nothing stored)."""
        part_size = self._part_size(size)
        upload = self._call("create_multipart_upload", Key=key)["UploadId"]
        md5s: list[bytes] = []
        parts: list[dict[str, Any]] = []
        blake = blake3.blake3()
        try:
            spool.seek(0)
            for offset in range(0, size, part_size):
                # A fresh buffer per part, sent as is: botocore takes a bytearray without
                # copying it, and memory stays at one part per worker.
                part = bytearray(min(part_size, size - offset))
                with self._spooling(source):
                    spool.readinto(part)
                blake.update(part)
                md5 = hashlib.md5(part).digest()
                response = self._call(
                    "upload_part",
                    Key=key,
                    UploadId=upload,
                    PartNumber=len(parts) + 1,
                    Body=part,
                    ContentMD5=_b64(md5),
                )
                md5s.append(md5)
                parts.append({"PartNumber": len(parts) + 1, "ETag": response["ETag"]})
            if blake.hexdigest() != digest:
                self._abort(key, upload)
                return False
            response = self._call(
                "complete_multipart_upload", Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload)
            raise
        self._verify(response, f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(parts)}", key, digest, source)
        return True

    def _abort(self, key: str, upload: str) -> None:
        with contextlib.suppress(Exception):  # best effort; purge_temp collects leftovers
            self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload)

    def _verify(self, response: Mapping[str, Any], md5: str, key: str, digest: str, source: str) -> None:
        """Check what S3 stored against what was read: the ETag is the MD5 (or, for a
        multipart upload, the MD5 of the parts' MD5s) unless the object is KMS- or
        customer-key encrypted; then read it back instead. A mismatch removes the object."""
        etag = _etag(response)
        if etag == md5:
            return
        encrypted = response.get("ServerSideEncryption") == "aws:kms" or "SSECustomerAlgorithm" in response
        if encrypted and self._rehash_path(f"{self.bucket}/{key}") == digest:
            return
        self._discard_key(key)
        raise VerificationFailed(
            f"storage tier {self.name}: upload of {source} failed verification "
            f"(store reports ETag {etag}, expected {md5})",
            tier=self.name,
        )

    def exists(self, digest: str) -> bool:
        return self._head(self.key(digest)) is not None

    def _rehash_path(self, path: str) -> str | None:
        """Hash an object read in one streamed GET (s3fs's file object would ask for it a
        block at a time: a request, and on some stores a read of the whole object, per 4 MiB)."""
        bucket, key, _ = self.fs.split_path(path)

        async def read() -> str | None:
            try:
                response = await self.fs._call_s3("get_object", Bucket=bucket, Key=key, **self.fs.req_kw)
            except FileNotFoundError:
                return None
            hasher = blake3.blake3()
            body = response["Body"]
            try:
                while chunk := await body.read(CHUNK):
                    hasher.update(chunk)
            finally:
                body.close()
            return hasher.hexdigest()

        with self._guard(f"reading {path}"):
            return fsspec.asyn.sync(self.fs.loop, read)

    def delete(self, digest: str, if_older_than: float | None = None) -> bool:
        key = self.key(digest)
        head = self._head(key)
        if head is None or (if_older_than is not None and head["LastModified"].timestamp() >= if_older_than):
            return False
        self._call("delete_object", Key=key)
        return True

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=self.prefix + prefix, **token)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for obj in self._list("blobs/"):
            name = obj["Key"].rsplit("/", 1)[-1]
            if DIGEST.fullmatch(name) and obj["Key"] == self.key(name):
                yield BlobInfo(name, int(obj["Size"]), obj["LastModified"].timestamp())

    def purge_temp(self, cutoff: float) -> Swept:
        # Uploads go straight to content keys: a crash leaves only unfinished multipart
        # uploads (invisible as objects) and spool files the kernel already removed.
        swept = Swept()
        for upload in list(self._uploads("blobs/")):
            key = upload["Key"]
            name = key.rsplit("/", 1)[-1]
            if not (DIGEST.fullmatch(name) and key == self.key(name)):
                swept.skipped.append(f"upload {upload['UploadId']} to s3://{self.bucket}/{key}: not a blob")
            elif upload["Initiated"].timestamp() < cutoff:
                self._call("abort_multipart_upload", Key=key, UploadId=upload["UploadId"])
                swept.removed += 1
        return swept

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Unfinished multipart uploads under `prefix`, page by page."""
        markers: dict[str, str] = {}
        while True:
            page = self._call("list_multipart_uploads", Prefix=self.prefix + prefix, **markers)
            yield from page.get("Uploads", [])
            if not page.get("IsTruncated"):
                return
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def check(self, root: str) -> None:
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise ConfigError(
                f"storage tier {self.name}: bucket {self.bucket} does not exist ({root})", tier=self.name
            ) from None
        except PermissionError:
            pass  # a policy may allow writes under the prefix but not HeadBucket: the probe tells
        except Exception as exc:
            raise storage_error(self.name, f"checking {root}", exc) from exc
        key = f"{self.prefix}tmp/{TEMP_MARK}probe-{uuid.uuid4().hex}"
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=b"")
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise unwritable(self.name, root, exc) from exc


class _SourceBody(io.RawIOBase):
    """A stable source's first `size` bytes as a file object (an upload's body, the parts of
    a multipart one): a source found shorter than that raises SourceChanged instead of
    leaving the store waiting for the rest. Closing it leaves the source open."""

    def __init__(self, src: Source, size: int) -> None:
        super().__init__()
        self.src = src
        self.size = size
        self.offset = 0
        self.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # Only what an upload asks: back to the start (a retry), or where it is (tell).
        if (offset, whence) == (0, os.SEEK_SET):
            os.lseek(self.src.fd, 0, os.SEEK_SET)
            self.offset = 0
        elif (offset, whence) != (0, os.SEEK_CUR):
            raise io.UnsupportedOperation("a source body seeks only to its start")
        return self.offset

    def readinto(self, buf: Any) -> int:
        want = min(len(buf), self.size - self.offset)
        got = self.src.fill(memoryview(buf).cast("B")[:want])
        if got < want:
            raise SourceChanged(self.src.path, "shrank while being stored")
        self.offset += got
        return got
