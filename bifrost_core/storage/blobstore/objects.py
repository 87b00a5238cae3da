"""The tier on any fsspec filesystem other than a local one or S3: a source streams to a
temporary path, is verified by reading it back, then moved to its content path."""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, BinaryIO

import blake3
import fsspec

from bifrost_core.errors import BifrostError
from bifrost_core.storage.blobstore.source import Source
from bifrost_core.storage.blobstore.tier import (
    CHUNK,
    DIGEST,
    TEMP_MARK,
    BlobInfo,
    PutResult,
    Swept,
    Tier,
    blob_key,
    unwritable,
)
from bifrost_core.storage.errors import BlobNotFound, StorageError, VerificationFailed, storage_error

# An object tier's temporary files: a uuid in tmp/.
_OBJECT_TEMP = re.compile(r"[0-9a-f]{32}")


class ObjectTier(Tier):
    """Any fsspec filesystem: stream to a temporary path, read back to verify, then move."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, name: str, part_size: int) -> None:
        self.fs = fs
        self.base = path.rstrip("/")
        self.name = name
        self.part_size = part_size
        self._local = threading.local()

    def path(self, digest: str) -> str:
        return f"{self.base}/{blob_key(digest)}"

    def _tmp_path(self) -> str:
        return f"{self.base}/tmp/{uuid.uuid4().hex}"  # as _OBJECT_TEMP expects

    def url(self, digest: str) -> str:
        return self.fs.unstrip_protocol(self.path(digest))

    def _buffer(self) -> memoryview:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = memoryview(bytearray(CHUNK))
        return buf

    def _guard(self, action: str) -> _Guard:
        return _Guard(self.name, action)

    def put_once(self, src: Source) -> PutResult | None:
        buf = self._buffer()
        tmp = self._tmp_path()
        hasher = blake3.blake3()
        total = 0
        try:
            with (
                self._guard(f"storing {src.path}"),
                self.fs.open(tmp, "wb", block_size=self.part_size) as out,
            ):
                for chunk in src.chunks(buf):
                    hasher.update(chunk)
                    out.write(chunk)
                    total += len(chunk)
            if src.changed(total):
                self._remove(tmp)
                return None
            digest = hasher.hexdigest()
            if self._rehash_path(tmp) != digest:
                raise VerificationFailed(
                    f"storage tier {self.name}: {src.path} read back differently after upload",
                    tier=self.name,
                )
            final = self.path(digest)
            # A blob already there is read back before it is trusted; a damaged one is replaced.
            found = self._rehash_path(final)
            if found != digest:
                with self._guard(f"storing {src.path}"):
                    self.fs.mv(tmp, final)
        except BaseException:
            self._remove(tmp)
            raise
        if found == digest:
            self._remove(tmp)
        url = self.fs.unstrip_protocol(final)
        return PutResult(src.path, digest, total, url, found != digest, found not in (None, digest))

    def _remove(self, path: str) -> None:
        with contextlib.suppress(OSError):  # best effort; purge_temp collects leftovers
            self.fs.rm_file(path)

    def _exists_path(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def exists(self, digest: str) -> bool:
        with self._guard(f"looking up blob {digest}"):
            return self._exists_path(self.path(digest))

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        self.fs.invalidate_cache(path)
        try:
            with self._guard(f"opening blob {digest}"):
                return self.fs.open(path, "rb", block_size=CHUNK)
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise BlobNotFound(digest, self.name) from None
            raise

    def _rehash_path(self, path: str) -> str | None:
        hasher = blake3.blake3()
        buf = self._buffer()
        self.fs.invalidate_cache(path)
        try:
            with self._guard(f"reading {path}"), self.fs.open(path, "rb", block_size=CHUNK) as f:
                while n := f.readinto(buf):
                    hasher.update(buf[:n])
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise
        return hasher.hexdigest()

    def rehash(self, digest: str) -> str | None:
        return self._rehash_path(self.path(digest))

    def delete(self, digest: str, if_older_than: float | None = None) -> bool:
        path = self.path(digest)
        self.fs.invalidate_cache(path)
        try:
            with self._guard(f"deleting blob {digest}"):
                info = self.fs.info(path)
                young = if_older_than is not None and _mtime(info) >= if_older_than
                if info.get("type") != "file" or young:
                    return False
                self.fs.rm_file(path)
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return False
            raise
        return True

    def _listing(self, prefix: str) -> list[dict[str, Any]]:
        path = f"{self.base}/{prefix}"
        self.fs.invalidate_cache(path)
        with self._guard(f"listing {prefix}"):
            found = self.fs.find(path, detail=True)
        self.fs.invalidate_cache(path)
        return [found[k] for k in sorted(found)]

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for info in self._listing("blobs"):
            name = info["name"].rsplit("/", 1)[-1]
            if DIGEST.fullmatch(name) and info["name"] == self.path(name):
                yield BlobInfo(name, int(info["size"]), _mtime(info))

    def purge_temp(self, cutoff: float) -> Swept:
        swept = Swept()
        for info in self._listing("tmp"):
            name = info["name"]
            folder, _, leaf = name.rpartition("/")
            if folder != f"{self.base}/tmp" or not _OBJECT_TEMP.fullmatch(leaf):
                swept.skipped.append(f"{self.fs.unstrip_protocol(name)}: not a file this store wrote")
            elif _mtime(info) < cutoff:
                try:
                    with self._guard(f"removing {name}"):
                        self.fs.rm_file(name)
                    swept.removed += 1
                except StorageError as exc:
                    swept.skipped.append(f"{self.fs.unstrip_protocol(name)}: {exc}")
        return swept

    def check(self, root: str) -> None:
        probe = f"{self.base}/tmp/{TEMP_MARK}probe-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except Exception as exc:
            raise unwritable(self.name, root, exc) from exc


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time of an fsspec listing entry, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
    return 0.0


class _Guard:
    """Turns any failure of the store (not of a source) into a StorageError naming the tier."""

    __slots__ = ("action", "tier")

    def __init__(self, tier: str, action: str) -> None:
        self.tier = tier
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, BifrostError) or not isinstance(exc, Exception):
            return
        raise storage_error(self.tier, self.action, exc) from exc
