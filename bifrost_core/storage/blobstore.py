"""Content-addressed blob store over one storage tier: a local folder or any fsspec URL.

A blob is addressed by the BLAKE3 hex digest of its bytes and lives at
``blobs/<d[:2]>/<d>`` under the tier root: 256 folders in all, so storing many small
files does not create a folder per file (a second level would add one mkdir per blob up
to 65,536). Each source byte is read once: it is hashed in the same pass as it is copied.

- Local tiers (a path or ``file://``): sources are copied to temporary files, made
  durable with one filesystem sync per batch, then renamed into place, then the renames
  are synced. Files from `DIRECT_FROM` bytes are written with O_DIRECT, past the page
  cache. A small file, hashed before it is written, gets its temporary file in its
  blob's own folder (``blobs/ab/.tmp-…``): creations spread over 256 folders run in
  parallel where one folder would serialise them, and the rename stays in one folder.
  A larger file streams to ``tmp/`` (its folder is known only once it is hashed). A
  crash leaves at most stale temporary files (`purge_temp`), never a partial blob at
  its final path.
- S3 (s3fs): every blob goes straight to its final key, verified by S3 against the
  Content-MD5 sent and by the ETag returned. Small files are hashed in memory. Larger
  ones are copied once from the source into an unnamed local spool file (O_TMPFILE: it
  vanishes with the process), hashed on the way, then uploaded from the spool in one PUT,
  or in parts above `multipart_threshold`. Knowing the digest before the upload spares
  the temporary key and the server-side copy, which cost the store a second write.
- Other fsspec stores: stream to a temporary path, verify by reading back, then move.

Identical content is stored once: a blob that already exists is not written again, once
it is shown to hold the right bytes (a small local blob is hashed, a large one hashed once
its new copy is on disk; an S3 object's ETag is compared with the MD5 of the bytes read;
other stores read it back). A damaged one is replaced by the new copy, atomically.

Garbage collection (`iter_blobs`, `delete`, `purge_temp`) touches only what the store
writes: blobs at their content paths and its own temporary files, never folders, never
symlinks, and counts what else it finds rather than failing on it.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import errno
import functools
import hashlib
import itertools
import mmap
import os
import re
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

import blake3
import fsspec
from fsspec.implementations.local import LocalFileSystem

from bifrost_core.errors import BifrostError, ConfigError
from bifrost_core.storage.durability import start_writeback, sync_filesystem
from bifrost_core.storage.errors import (
    BlobNotFound,
    InvalidDigest,
    PutFailed,
    SourceChanged,
    SourceError,
    SourceUnreadable,
    StorageError,
    StorageFull,
    VerificationFailed,
    storage_error,
)

MiB = 1 << 20
GiB = 1 << 30

# Files up to this size are read whole and hashed before anything is written, so content
# the tier already holds costs one read and no write.
SMALL_FILE = 4 * MiB
# Files from this size are written with O_DIRECT where the filesystem takes it: straight to
# the disk, not through the page cache. A batch's sync then has nothing left to write, and
# the disk is fed at its own pace rather than by the kernel's write-back, which here
# swung from 0.6 to 3 s per GiB: 1 MiB frames went from 1.3-1.5 s to ~0.9 s per GiB, large
# files from 0.5-1.8 s to 0.53-0.56 s. Below it, a file costs the same either way, and
# the page cache lets many small writes be merged.
DIRECT_FROM = 256 << 10
# O_DIRECT wants buffers, offsets and lengths aligned to the device's logical block: 4 KiB
# covers every common disk. A file's unaligned tail is written through the page cache.
_DIRECT_ALIGN = 4096
# Copy buffer of the streaming paths.
CHUNK = 4 * MiB
# S3 refuses a single PUT above 5 GiB and more than 10,000 parts.
_S3_MAX_SINGLE = 5 * GiB
_S3_MAX_PARTS = 10_000

_DIGEST = re.compile(r"[0-9a-f]{64}")
_BLOB_FOLDER = re.compile(r"[0-9a-f]{2}")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO must fail the regular-file check, not hang waiting for a writer.
_SOURCE_FLAGS = os.O_RDONLY | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC
_O_DIRECT = getattr(os, "O_DIRECT", 0)
if _O_DIRECT:  # Linux and the BSDs; Windows has neither O_DIRECT nor fcntl
    import fcntl
# Names of temporary files start so (hidden, and never a digest: listings skip them).
_TEMP_MARK = ".tmp-"
# A local tier's temporary files: mark, process id, store id, count (see _LocalTier). gc
# removes files so named and nothing else.
_TEMP_NAME = re.compile(re.escape(_TEMP_MARK) + r"[0-9]+-[0-9a-f]{12}-[0-9]+")
# An object tier's temporary files: a uuid in tmp/.
_OBJECT_TEMP = re.compile(r"[0-9a-f]{32}")
# Blobs are immutable, and published hard links share their inode: make them read-only.
_BLOB_MODE = 0o444


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """The outcome of storing one source: its content address and where it now lives.

    `source` is the path as given to the store; `new` is False when the tier already
    held this content and nothing was written; `repaired` is True when the tier held this
    digest with other bytes (damaged, truncated) and the right ones replaced them.
    """

    source: str
    digest: str
    size: int
    url: str
    new: bool
    repaired: bool = False


class BlobInfo(NamedTuple):
    """A blob found in a tier: digest, size in bytes, last write time (POSIX seconds)."""

    digest: str
    size: int
    mtime: float


@dataclass
class Swept:
    """What `purge_temp` did: temporary files removed, and what it left alone (`path: why`):
    entries the store did not write, and files it could not remove."""

    removed: int = 0
    skipped: list[str] = field(default_factory=list)


def check_digest(digest: str) -> str:
    """Return `digest` if it is a lowercase BLAKE3 hex digest, else raise InvalidDigest."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidDigest(digest)
    return digest


def blob_key(digest: str) -> str:
    """The key of a blob relative to its tier root: ``blobs/ab/abcd…``."""
    check_digest(digest)
    return f"blobs/{digest[:2]}/{digest}"


def root_of(url: str, digest: str) -> str:
    """The tier root a blob's location URL was written under."""
    suffix = "/" + blob_key(digest)
    if not url.endswith(suffix):
        raise ValueError(f"not a blob location: {url}")
    return url[: -len(suffix)]


class BlobStore:
    """Stores and retrieves blobs by BLAKE3 digest in one tier.

    `root` is a local folder or an fsspec URL (``s3://bucket/prefix``, ``memory://x``, …);
    `storage_options` go to the fsspec filesystem (for s3fs: ``endpoint_url``, ``key``,
    ``secret``, ``client_kwargs``, ``config_kwargs``…). `name` labels the tier in messages
    (default: the root). On S3, files above `multipart_threshold` bytes are uploaded in
    parts of at least `part_size` bytes.

    Thread-safe: one store may serve several batches at once.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, Any] | None = None,
        name: str | None = None,
        part_size: int = 16 * MiB,
        multipart_threshold: int = 1 * GiB,
    ) -> None:
        url = os.fspath(root)
        options = dict(storage_options or {})
        if url.startswith(("s3://", "s3a://")):
            options = _s3_defaults(options)
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot open storage tier {url}: {exc}", tier=url) from exc
        self.root = url
        self.name = name or url
        self._tier: _Tier
        if isinstance(fs, LocalFileSystem):
            self._tier = _LocalTier(path, self.name)
        elif "s3" in _protocols(fs):
            self._tier = _S3Tier(fs, path, self.name, part_size, multipart_threshold)
        else:
            self._tier = _ObjectTier(fs, path, self.name, part_size)

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"

    @property
    def is_local(self) -> bool:
        """True for a tier on a local (or mounted) filesystem, where blobs have paths."""
        return isinstance(self._tier, _LocalTier)

    @property
    def local_root(self) -> Path | None:
        """The tier's folder (absolute) on a local tier; None on an object store."""
        return Path(self._tier.root) if isinstance(self._tier, _LocalTier) else None

    def put_file(self, source: str | os.PathLike[str]) -> StoredBlob:
        """Store one file and make it durable; see `put_files`.

        Raises SourceUnreadable or SourceChanged (naming the file), StorageFull or
        StorageError.
        """
        try:
            return self.put_files([source], workers=1)[0]
        except PutFailed as exc:
            raise exc.failures[0] from None

    def put_files(
        self,
        sources: Sequence[str | os.PathLike[str]],
        *,
        workers: int = 4,
        on_done: Callable[[int], None] | None = None,
    ) -> list[StoredBlob]:
        """Store a batch of files, `workers` at a time; return one StoredBlob per source, in order.

        `on_done(i)` is called, from the worker threads, as source `i` is copied (or fails):
        for progress reports only, since the batch is durable only when this returns.

        Every blob returned is durable when this returns, so the caller may record it.
        A source that cannot be read, or that changes while read (size or mtime moves,
        twice), does not stop the others: once all are done, PutFailed is raised with the
        blobs stored and the per-file errors. An error of the store itself (StorageFull,
        StorageError) aborts the batch: pending work is dropped, temporary files removed,
        and the error is raised.
        """
        paths = [os.fspath(s) for s in sources]
        if not paths:
            return []
        results: list[StoredBlob | _Pending | SourceError | None] = [None] * len(paths)
        abort = threading.Event()
        # Each worker takes the next file until none is left: one future per worker, not
        # per file (a future and its locks cost more than storing a small file).
        # (Taking the next item of a range iterator is atomic under the GIL.)
        todo = iter(range(len(paths)))

        def run() -> None:
            for i in todo:
                if abort.is_set():
                    return
                try:
                    results[i] = self._tier.put(paths[i])
                except SourceError as exc:
                    results[i] = exc
                except BaseException:
                    abort.set()
                    raise
                if on_done is not None:
                    on_done(i)

        try:
            if workers <= 1 or len(paths) == 1:
                run()
            else:
                count = min(workers, len(paths))
                with ThreadPoolExecutor(count, "blobstore") as pool:
                    errors = [f.exception() for f in [pool.submit(run) for _ in range(count)]]
                first = next((e for e in errors if e is not None), None)
                if first is not None:
                    raise first
            pending = [r for r in results if isinstance(r, _Pending)]
            placed = iter(self._tier.commit(pending))
        except BaseException:
            self._tier.discard([r for r in results if isinstance(r, _Pending)])
            raise
        stored = [next(placed) if isinstance(r, _Pending) else r for r in results]
        failures = [r for r in stored if isinstance(r, SourceError)]
        blobs = [r for r in stored if isinstance(r, StoredBlob)]
        if failures:
            raise PutFailed(blobs, failures)
        return blobs

    def exists(self, digest: str) -> bool:
        """True if the tier holds a blob with this digest."""
        return self._tier.exists(check_digest(digest))

    def open(self, digest: str) -> BinaryIO:
        """Open a blob for binary reading (a context manager); BlobNotFound if absent."""
        return self._tier.open(check_digest(digest))

    def url_for(self, digest: str) -> str:
        """Where the blob lives (or would live): an absolute path on local tiers, else a URL."""
        return self._tier.url(check_digest(digest))

    def local_path(self, digest: str) -> Path | None:
        """The blob's filesystem path on a local tier; None on an object store."""
        check_digest(digest)
        return Path(self._tier.url(digest)) if isinstance(self._tier, _LocalTier) else None

    def rehash(self, digest: str) -> str | None:
        """Hash the stored bytes again: the digest found (equal to `digest` unless the blob is
        corrupt), or None if the blob is missing."""
        return self._tier.rehash(check_digest(digest))

    def missing(self, digests: Collection[str], *, workers: int = 8) -> set[str]:
        """Those of `digests` the tier does not hold: one stat (or HEAD) each, `workers` at a time."""
        found = _spread(self._tier.exists, [check_digest(d) for d in digests], workers)
        return {digest for digest, present in found.items() if not present}

    def damaged(self, digests: Collection[str], *, workers: int = 2) -> set[str]:
        """Those of `digests` whose blob is missing or does not hash to its digest (each is read)."""
        found = _spread(self._tier.rehash, [check_digest(d) for d in digests], workers)
        return {digest for digest, rehashed in found.items() if rehashed != digest}

    def delete(self, digest: str, *, if_older_than: float | None = None) -> bool:
        """Remove a blob; True if it was removed. With `if_older_than` (POSIX seconds), only
        if its last write is older: the time is read again just before removing it. Records
        pointing at it are the caller's affair."""
        return self._tier.delete(check_digest(digest), if_older_than)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every blob in the tier (digest, size, mtime), for garbage collection and audits."""
        return self._tier.iter_blobs()

    def usage(self) -> int:
        """Total bytes of all blobs in the tier."""
        return sum(info.size for info in self._tier.iter_blobs())

    def purge_temp(self, older_than: float = 24 * 3600.0) -> Swept:
        """Remove temporary files (and unfinished S3 multipart uploads) left by crashed puts.

        Only those older than `older_than` seconds, so running puts are not disturbed, and
        only files named as this store names them: anything else found among them (folders,
        symlinks, other files) is left alone and listed in `Swept.skipped`, as are files
        that cannot be removed.
        """
        return self._tier.purge_temp(time.time() - older_than)

    def check(self) -> None:
        """Check that the tier root exists and takes a write: a probe written and removed.

        Raises ConfigError naming the tier and root if the root does not exist (a folder
        not mounted, a misspelt bucket) or refuses the write (no permission, read-only),
        and StorageError if the store cannot be reached. An empty root is fine.
        """
        self._tier.check(self.root)


def _spread(function: Callable[[str], Any], items: list[str], workers: int) -> dict[str, Any]:
    """`function` of each item, on up to `workers` threads each taking a share of the items
    (a future per item would cost more than a stat)."""
    if workers <= 1 or len(items) <= 1:
        return {item: function(item) for item in items}
    shares = [items[i::workers] for i in range(min(workers, len(items)))]
    with ThreadPoolExecutor(len(shares), "blobstore") as pool:
        done = pool.map(lambda share: [(item, function(item)) for item in share], shares)
        return dict(pair for share in done for pair in share)


# --------------------------------------------------------------------------- sources


class _Source:
    """One source file, open for a single read, able to tell whether it changed meanwhile."""

    __slots__ = ("fd", "mtime_ns", "path", "size")

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, _SOURCE_FLAGS)
        except OSError as exc:
            raise SourceUnreadable(path, f"cannot open: {_strerror(exc)}") from exc
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise SourceUnreadable(path, f"cannot store: {kind}")
        except BaseException:
            os.close(self.fd)
            raise
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def read_all(self) -> bytes:
        """The whole file, in (usually) one read of size + 1 bytes so growth shows."""
        try:
            first = os.read(self.fd, self.size + 1)
            parts, got = [first], len(first)
            while 0 < got <= self.size:  # a short read: keep going until EOF or past size
                more = os.read(self.fd, self.size + 1 - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
        except OSError as exc:
            raise SourceUnreadable(self.path, f"cannot read: {_strerror(exc)}") from exc
        return first if len(parts) == 1 else b"".join(parts)

    def readinto(self, buf: memoryview) -> int:
        try:
            return os.readv(self.fd, [buf])
        except OSError as exc:
            raise SourceUnreadable(self.path, f"cannot read: {_strerror(exc)}") from exc

    def chunks(self, buf: memoryview) -> Iterator[memoryview]:
        """The file a buffer at a time, up to its size at open: growth is caught by
        `changed`, not followed."""
        left = self.size
        while left > 0:
            n = self.readinto(buf[: min(len(buf), left)])
            if not n:
                return
            left -= n
            yield buf[:n]

    def fill(self, buf: memoryview) -> int:
        """Read until `buf` is full or EOF; the number of bytes read."""
        got = 0
        while got < len(buf):
            n = self.readinto(buf[got:])
            if not n:
                break
            got += n
        return got

    def changed(self, bytes_read: int) -> bool:
        """True if the file is not what it was when opened: size or mtime moved, or the bytes
        read do not add up to the size."""
        st = os.fstat(self.fd)
        return bytes_read != self.size or st.st_size != self.size or st.st_mtime_ns != self.mtime_ns

    def rewind(self) -> None:
        """Start over on the file as it is now."""
        st = os.fstat(self.fd)
        self.size, self.mtime_ns = st.st_size, st.st_mtime_ns
        os.lseek(self.fd, 0, os.SEEK_SET)

    def gave_up(self) -> SourceChanged:
        return SourceChanged(self.path, "changed while being read (size or modification time moved), twice")


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


class _Pending(NamedTuple):
    """A local blob written to a temporary file, waiting for the batch sync to be placed.

    `checked`: the final path was found empty or damaged just before writing (small
    files), so only a duplicate within the batch can hold the right bytes there now;
    `repair`: it was found damaged.
    """

    source: str
    digest: str
    size: int
    tmp: str
    final: str
    checked: bool
    repair: bool = False


class _Tier(abc.ABC):
    """A tier backend; see BlobStore for the meaning of each method. `put` returns either
    a stored blob or, on tiers that sync per batch, a pending one for `commit`."""

    @abc.abstractmethod
    def put(self, path: str) -> StoredBlob | _Pending: ...

    def commit(self, pending: list[_Pending]) -> list[StoredBlob]:
        return []

    def discard(self, pending: list[_Pending]) -> None:
        return None

    @abc.abstractmethod
    def exists(self, digest: str) -> bool: ...

    @abc.abstractmethod
    def open(self, digest: str) -> BinaryIO: ...

    @abc.abstractmethod
    def url(self, digest: str) -> str: ...

    @abc.abstractmethod
    def rehash(self, digest: str) -> str | None: ...

    @abc.abstractmethod
    def delete(self, digest: str, if_older_than: float | None = None) -> bool: ...

    @abc.abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]: ...

    @abc.abstractmethod
    def purge_temp(self, cutoff: float) -> Swept: ...

    @abc.abstractmethod
    def check(self, root: str) -> None: ...


# --------------------------------------------------------------------------- local tier


class _LocalTier(_Tier):
    def __init__(self, root: str, name: str) -> None:
        self.root = os.path.abspath(root)
        self.blobs = os.path.join(self.root, "blobs")
        self.tmp = os.path.join(self.root, "tmp")
        self.name = name
        self._dirs: set[str] = set()
        # Copy buffers free for the next put. Kept by the tier, not per thread: each batch
        # runs on new threads, and a fresh 4 MiB buffer is page-faulted in at each first use.
        self._free_buffers: list[memoryview] = []
        # Whether to write large blobs with O_DIRECT: until the filesystem refuses it.
        self.direct = bool(_O_DIRECT)
        # Temporary names: unique per process and store, cheaper than a uuid per file.
        self._temp_prefix = f"{_TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:12]}-"
        self._temp_count = itertools.count()

    def url(self, digest: str) -> str:
        return f"{self.blobs}/{digest[:2]}/{digest}"

    def put(self, path: str) -> StoredBlob | _Pending:
        self._ensure_dir(self.tmp)  # and so the tier root, which each batch's sync opens
        # (list.pop and append are atomic: the pool needs no lock.)
        buf = self._free_buffers.pop() if self._free_buffers else _aligned_buffer(SMALL_FILE + 1)
        try:
            with _Source(path) as src:
                for _attempt in range(2):
                    put = self._put_small if src.size <= SMALL_FILE else self._put_streamed
                    result = put(src, buf)
                    if result is not None:
                        return result
                    src.rewind()
                raise src.gave_up()
        finally:
            self._free_buffers.append(buf)

    def _put_small(self, src: _Source, buf: memoryview) -> StoredBlob | _Pending | None:
        # One byte more than the size, so that growth shows; into a reused buffer, not a new
        # bytes object per file (a fresh megabyte is a fresh mmap, page-faulted in).
        data = buf[: src.size + 1]
        data = data[: src.fill(data)]
        if src.changed(len(data)):
            return None
        digest = blake3.blake3(data).hexdigest()
        final = self.url(digest)
        size = _file_size(final)
        # A blob of the right size is hashed before it is trusted: it is small, and a new
        # version must not point at damaged bytes.
        if size == len(data) and self._small_hash(final, digest) == digest:
            return StoredBlob(src.path, digest, len(data), final, False)
        folder = os.path.dirname(final)
        self._ensure_dir(folder)
        tmp = self._new_temp(folder)
        with self._temp_file(tmp, src.path, large=len(data) >= DIRECT_FROM) as out:
            out.write(data)
        return _Pending(src.path, digest, len(data), tmp, final, True, repair=size is not None)

    def _small_hash(self, path: str, digest: str) -> str | None:
        """BLAKE3 of a small blob read whole, or None if it is gone."""
        try:
            with open(path, "rb") as f:
                return blake3.blake3(f.read()).hexdigest()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(self.name, f"reading blob {digest}", exc) from exc

    def _put_streamed(self, src: _Source, buf: memoryview) -> _Pending | None:
        buf = buf[:CHUNK]
        tmp = self._new_temp(self.tmp)
        with self._temp_file(tmp, src.path, large=True) as out:
            hasher = blake3.blake3()
            total = 0
            for chunk in src.chunks(buf):
                hasher.update(chunk)
                out.write(chunk)
                total += len(chunk)
            if src.changed(total):
                out.abandon()
                return None
        digest = hasher.hexdigest()
        return _Pending(src.path, digest, total, tmp, self.url(digest), False)

    def commit(self, pending: list[_Pending]) -> list[StoredBlob]:
        # Data first, then names: a blob at its final path is always complete on disk.
        # The sync runs even when nothing is pending: a deduplicated blob may have been
        # placed by a crashed process whose rename never reached the disk.
        self._sync("syncing new blobs")
        done: list[StoredBlob] = []
        placed: set[str] = set()
        try:
            for p in pending:
                done.append(self._place(p, placed))
        except OSError as exc:
            self.discard(pending[len(done) :])
            raise storage_error(self.name, f"placing blob {pending[len(done)].digest}", exc) from exc
        if pending:
            self._sync("syncing blob names")
        return done

    def discard(self, pending: list[_Pending]) -> None:
        for p in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p.tmp)

    def _place(self, p: _Pending, placed: set[str]) -> StoredBlob:
        """Rename a synced temporary file to its content path, unless that blob is there
        with the right bytes (a damaged one is replaced)."""
        repair = p.repair
        if p.digest not in placed and not p.checked:
            size = _file_size(p.final)
            # Hashing the blob found costs a read of it, but keeps hard links to it (published
            # paths) on one inode, which replacing it by the new copy would split.
            repair = size is not None and (size != p.size or self.rehash(p.digest) != p.digest)
            if size is not None and not repair:
                placed.add(p.digest)
        if p.digest in placed:
            os.unlink(p.tmp)
            return StoredBlob(p.source, p.digest, p.size, p.final, False)
        try:
            os.replace(p.tmp, p.final)
        except FileNotFoundError:  # first blob of its directory
            self._ensure_dir(os.path.dirname(p.final))
            os.replace(p.tmp, p.final)
        placed.add(p.digest)
        return StoredBlob(p.source, p.digest, p.size, p.final, True, repair)

    def _sync(self, action: str) -> None:
        try:
            sync_filesystem(self.root)
        except OSError as exc:
            raise storage_error(self.name, action, exc) from exc

    def _new_temp(self, folder: str) -> str:
        return f"{folder}/{self._temp_prefix}{next(self._temp_count)}"

    def _ensure_dir(self, path: str) -> None:
        if path in self._dirs:
            return
        try:
            try:  # usually only the last level is missing: one mkdir, no stat of each parent
                os.mkdir(path)
            except FileNotFoundError:
                os.makedirs(path, exist_ok=True)
            except FileExistsError:
                pass
        except OSError as exc:
            raise storage_error(self.name, f"creating {path}", exc) from exc
        self._dirs.add(path)

    def _temp_file(self, tmp: str, source: str, *, large: bool) -> _TempFile:
        """Create a temporary file for a blob; O_DIRECT for a large one where the filesystem
        takes it (one that refuses is not asked again)."""
        if large and self.direct:
            try:
                return _TempFile(self, os.open(tmp, _TEMP_FLAGS | _O_DIRECT, _BLOB_MODE), tmp, source, True)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise storage_error(self.name, f"storing {source}", exc) from exc
                self.direct = False
                with contextlib.suppress(FileNotFoundError):  # some kernels create it first
                    os.unlink(tmp)
        try:
            fd = os.open(tmp, _TEMP_FLAGS, _BLOB_MODE)
        except OSError as exc:
            raise storage_error(self.name, f"storing {source}", exc) from exc
        return _TempFile(self, fd, tmp, source, False, writeback=large)

    def exists(self, digest: str) -> bool:
        return os.path.isfile(self.url(digest))

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.url(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(digest, self.name) from None

    def rehash(self, digest: str) -> str | None:
        path = self.url(digest)
        try:
            # Threads pay off on large blobs only: on a small one they cost more than the hashing.
            threads = blake3.blake3.AUTO if os.stat(path).st_size > SMALL_FILE else 1
            hasher = blake3.blake3(max_threads=threads)
            hasher.update_mmap(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(self.name, f"reading blob {digest}", exc) from exc
        return hasher.hexdigest()

    def delete(self, digest: str, if_older_than: float | None = None) -> bool:
        path = self.url(digest)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or (if_older_than is not None and st.st_mtime >= if_older_than):
                return False
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise storage_error(self.name, f"deleting blob {digest}", exc) from exc
        return True

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for folder in self._blob_folders(None):
            for entry in sorted(_entries(folder, None), key=lambda e: e.name):
                if _is_blob(entry, folder):
                    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                        st = entry.stat(follow_symlinks=False)
                        yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def _blob_folders(self, swept: Swept | None) -> list[str]:
        """The folders blobs/ab/ (real folders, not symlinks); with `swept`, anything else in
        blobs/ is listed there as skipped."""
        if not _own_folder(self.blobs, swept):
            return []
        folders = []
        for entry in _entries(self.blobs, swept):
            if _BLOB_FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif swept is not None:
                swept.skipped.append(f"{entry.path}: not a blob folder")
        return sorted(folders)

    def purge_temp(self, cutoff: float) -> Swept:
        swept = Swept()
        folders = [self.tmp] if _own_folder(self.tmp, swept) else []
        for folder in folders + self._blob_folders(swept):
            for entry in _entries(folder, swept):
                if folder != self.tmp and _is_blob(entry, folder):
                    continue
                if not (_TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                    swept.skipped.append(f"{entry.path}: not a file this store wrote")
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        swept.removed += 1
                except FileNotFoundError:
                    continue  # placed meanwhile
                except OSError as exc:
                    swept.skipped.append(f"{entry.path}: {_strerror(exc)}")
        return swept

    def check(self, root: str) -> None:
        try:
            if not os.path.isdir(self.root):
                missing = not os.path.lexists(self.root)
                raise ConfigError(
                    f"storage tier {self.name}: {root} {'does not exist' if missing else 'is not a folder'}",
                    tier=self.name,
                )
            probe = f"{self.root}/{_TEMP_MARK}probe-{uuid.uuid4().hex}"
            os.close(os.open(probe, _TEMP_FLAGS, 0o600))
            os.unlink(probe)
        except OSError as exc:
            raise _unwritable(self.name, root, exc) from exc


def _unwritable(tier: str, root: str, exc: Exception) -> BifrostError:
    """The error of a root check that failed: no permission or a read-only store is the
    configuration's fault, anything else the store's."""
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EROFS:
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        return ConfigError(f"storage tier {tier}: cannot write to {root}: {detail}", tier=tier)
    if isinstance(exc, FileNotFoundError):
        return ConfigError(f"storage tier {tier}: {root} does not exist", tier=tier)
    return storage_error(tier, f"checking {root}", exc)


def _is_blob(entry: os.DirEntry[str], folder: str) -> bool:
    """A regular file named by a digest, in the folder of its first two digits."""
    return (
        _DIGEST.fullmatch(entry.name) is not None
        and entry.name[:2] == os.path.basename(folder)
        and entry.is_file(follow_symlinks=False)
    )


def _own_folder(path: str, swept: Swept | None) -> bool:
    """Whether `path` is a folder the store may sweep: a real folder, not a symlink to one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if swept is not None:
            swept.skipped.append(f"{path}: {_strerror(exc)}")
        return False
    if stat.S_ISDIR(st.st_mode):
        return True
    if swept is not None:
        swept.skipped.append(f"{path}: not a folder")
    return False


def _entries(folder: str, swept: Swept | None) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []
    except OSError as exc:  # unreadable: left alone
        if swept is not None:
            swept.skipped.append(f"{folder}: {_strerror(exc)}")
        return []




def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


class _TempFile:
    """A blob's temporary file in a local tier, written front to back, closed on leaving
    the `with` block and removed if that block fails (or `abandon` was called).

    On an O_DIRECT file, whole blocks go straight to the disk; a tail shorter than a block
    (or everything, once the device refuses the alignment) goes through the page cache.
    Page-cache writes of a large file start their write-back at once, so the batch's sync
    finds little left to write.
    """

    __slots__ = ("direct", "fd", "keep", "offset", "path", "source", "tier", "writeback")

    def __init__(
        self, tier: _LocalTier, fd: int, path: str, source: str, direct: bool, *, writeback: bool = True
    ) -> None:
        self.tier = tier
        self.fd = fd
        self.path = path
        self.source = source
        self.direct = direct
        self.writeback = writeback
        self.offset = 0
        self.keep = True

    def __enter__(self) -> _TempFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        os.close(self.fd)
        if kind is not None or not self.keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def abandon(self) -> None:
        self.keep = False

    def write(self, data: memoryview) -> None:
        try:
            if self.direct:
                data = data[self._write_direct(data[: len(data) - len(data) % _DIRECT_ALIGN]) :]
                if not data:
                    return
                flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~_O_DIRECT)
                self.direct = False
            start = self.offset
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
                self.offset += n
            if self.writeback:
                start_writeback(self.fd, start, self.offset - start)
        except OSError as exc:
            raise storage_error(self.tier.name, f"storing {self.source}", exc) from exc

    def _write_direct(self, blocks: memoryview) -> int:
        """Write whole blocks with O_DIRECT; how many bytes went (fewer if the device
        refused the alignment or wrote part of a block)."""
        done = 0
        while done < len(blocks):
            try:
                n = os.write(self.fd, blocks[done:])
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.tier.direct = False  # the device wants larger blocks than _DIRECT_ALIGN
                break
            done += n
            self.offset += n
            if n % _DIRECT_ALIGN:
                break
        return done


def _aligned_buffer(size: int) -> memoryview:
    """A zeroed buffer starting on a page boundary (an anonymous mapping), as O_DIRECT needs."""
    return memoryview(mmap.mmap(-1, size))


# --------------------------------------------------------------------------- object tiers


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _s3_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Tune s3fs for streaming uploads unless the caller chose otherwise.

    Without these, botocore reads each body twice over plain HTTP (to sign its SHA-256)
    and adds its own checksum pass; the store verifies uploads by MD5/ETag instead.
    """
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("request_checksum_calculation", "when_required")
    config["s3"] = {"payload_signing_enabled": False, **(config.get("s3") or {})}
    return {**options, "config_kwargs": config}


class _ObjectTier(_Tier):
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

    def put(self, path: str) -> StoredBlob:
        with _Source(path) as src:
            for _attempt in range(2):
                result = self._put_streamed(src)
                if result is not None:
                    return result
                src.rewind()
            raise src.gave_up()

    def _put_streamed(self, src: _Source) -> StoredBlob | None:
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
        return StoredBlob(src.path, digest, total, url, found != digest, found not in (None, digest))

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
            if _DIGEST.fullmatch(name) and info["name"] == self.path(name):
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
        probe = f"{self.base}/tmp/{_TEMP_MARK}probe-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except Exception as exc:
            raise _unwritable(self.name, root, exc) from exc


def _b64(md5: bytes) -> str:
    """A Content-MD5 header value."""
    return base64.b64encode(md5).decode()


def _etag(response: Mapping[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


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


class _S3Tier(_ObjectTier):
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

    def put(self, path: str) -> StoredBlob:
        with _Source(path) as src:
            for _attempt in range(2):
                result = self._put_small(src) if src.size <= SMALL_FILE else self._put_spooled(src)
                if result is not None:
                    return result
                src.rewind()
            raise src.gave_up()

    def _put_small(self, src: _Source) -> StoredBlob | None:
        data = src.read_all()
        if src.changed(len(data)):
            return None
        digest = blake3.blake3(data).hexdigest()
        key = self.key(digest)
        url = self.url(digest)
        md5 = hashlib.md5(data)
        reuse, damaged = self._judge(self._head(key), md5.hexdigest(), len(data))
        if reuse:
            return StoredBlob(src.path, digest, len(data), url, False)
        # A PUT is atomic and S3 rejects a body that does not match Content-MD5.
        response = self._call("put_object", Key=key, Body=data, ContentMD5=_b64(md5.digest()))
        self._verify(response, md5.hexdigest(), key, digest, src.path)
        return StoredBlob(src.path, digest, len(data), url, True, damaged)

    def _put_spooled(self, src: _Source) -> StoredBlob | None:
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
            digest = blake.hexdigest()
            key = self.key(digest)
            url = self.url(digest)
            reuse, damaged = self._judge(
                self._head(key),
                md5.hexdigest(),
                total,
                functools.partial(self._multipart_etag, spool, total, src.path),
            )
            if reuse:
                return StoredBlob(src.path, digest, total, url, False)
            spool.seek(0)
            if total <= self.multipart_threshold:
                response = self._call(
                    "put_object", Key=key, Body=spool, ContentLength=total, ContentMD5=_b64(md5.digest())
                )
                self._verify(response, md5.hexdigest(), key, digest, src.path)
            else:
                self._put_parts(spool, key, total, digest, src.path)
        return StoredBlob(src.path, digest, total, url, True, damaged)

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

    def _put_parts(self, spool: BinaryIO, key: str, size: int, digest: str, source: str) -> None:
        """A multipart upload from the spool to the content key, each part checked by its
        Content-MD5, the whole by the ETag; the object appears only once completed."""
        part_size = self._part_size(size)
        upload = self._call("create_multipart_upload", Key=key)["UploadId"]
        md5s: list[bytes] = []
        parts: list[dict[str, Any]] = []
        try:
            for offset in range(0, size, part_size):
                # A fresh buffer per part, sent as is: botocore takes a bytearray without
                # copying it, and memory stays at one part per worker.
                part = bytearray(min(part_size, size - offset))
                with self._spooling(source):
                    spool.readinto(part)
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
            response = self._call(
                "complete_multipart_upload", Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload)
            raise
        self._verify(response, f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(parts)}", key, digest, source)

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
            if _DIGEST.fullmatch(name) and obj["Key"] == self.key(name):
                yield BlobInfo(name, int(obj["Size"]), obj["LastModified"].timestamp())

    def purge_temp(self, cutoff: float) -> Swept:
        # Uploads go straight to content keys: a crash leaves only unfinished multipart
        # uploads (invisible as objects) and spool files the kernel already removed.
        swept = Swept()
        for upload in list(self._uploads("blobs/")):
            key = upload["Key"]
            name = key.rsplit("/", 1)[-1]
            if not (_DIGEST.fullmatch(name) and key == self.key(name)):
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
        key = f"{self.prefix}tmp/{_TEMP_MARK}probe-{uuid.uuid4().hex}"
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=b"")
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise _unwritable(self.name, root, exc) from exc
