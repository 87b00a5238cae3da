"""`BlobStore`: the one interface to a tier, whatever its backend; it runs batches of puts
on threads and leaves each file to the tier's backend."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from bifrost_core.errors import ConfigError
from bifrost_core.storage.blobstore.local import LocalTier
from bifrost_core.storage.blobstore.objects import ObjectTier
from bifrost_core.storage.blobstore.s3 import S3Tier, s3_defaults
from bifrost_core.storage.blobstore.tier import (
    BlobInfo,
    GiB,
    MiB,
    Pending,
    PutResult,
    Swept,
    Tier,
    check_digest,
)
from bifrost_core.storage.errors import PutFailed, SourceError


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
            options = s3_defaults(options)
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot open storage tier {url}: {exc}", tier=url) from exc
        self.root = url
        self.name = name or url
        self._tier: Tier
        if isinstance(fs, LocalFileSystem):
            self._tier = LocalTier(path, self.name)
        elif "s3" in _protocols(fs):
            self._tier = S3Tier(fs, path, self.name, part_size, multipart_threshold)
        else:
            self._tier = ObjectTier(fs, path, self.name, part_size)

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"

    @property
    def is_local(self) -> bool:
        """True for a tier on a local (or mounted) filesystem, where blobs have paths."""
        return isinstance(self._tier, LocalTier)

    @property
    def local_root(self) -> Path | None:
        """The tier's folder (absolute) on a local tier; None on an object store."""
        return Path(self._tier.root) if isinstance(self._tier, LocalTier) else None

    def put_file(self, source: str | os.PathLike[str]) -> PutResult:
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
        on_stored: Callable[[PutResult], None] | None = None,
        stable: bool = False,
    ) -> list[PutResult]:
        """Store a batch of files, `workers` at a time; return one PutResult per source, in order.

        `stable`: nothing writes to the sources meanwhile (they are another tier's blobs), so
        an S3 tier uploads each from the file itself, read twice (hashed, then sent with that
        MD5), instead of copying it to a local spool first.

        `on_done(i)` is called, from the worker threads, as source `i` is copied (or fails):
        for progress reports only, since the batch is durable only when this returns.
        `on_stored(result)` is called once per blob as soon as it is durable: from the worker
        threads on an object tier, where each put is final, after the batch's sync on a local
        one; so a caller may read blobs back while others are still being stored.

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
        results: list[PutResult | Pending | SourceError | None] = [None] * len(paths)
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
                    results[i] = result = self._tier.put(paths[i], stable=stable)
                    if on_stored is not None and isinstance(result, PutResult):
                        on_stored(result)
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
            pending = [r for r in results if isinstance(r, Pending)]
            committed = self._tier.commit(pending)
        except BaseException:
            self._tier.discard([r for r in results if isinstance(r, Pending)])
            raise
        if on_stored is not None:
            for result in committed:
                on_stored(result)
        placed = iter(committed)
        stored = [next(placed) if isinstance(r, Pending) else r for r in results]
        failures = [r for r in stored if isinstance(r, SourceError)]
        blobs = [r for r in stored if isinstance(r, PutResult)]
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
        return Path(self._tier.url(digest)) if isinstance(self._tier, LocalTier) else None

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


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
