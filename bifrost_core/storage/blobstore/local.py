"""The local tier: a folder on a local or mounted filesystem, where blobs have paths.

Sources are copied to temporary files, made durable with one filesystem sync per batch,
then renamed into place, then the renames are synced. Files from `DIRECT_FROM` bytes are
written with O_DIRECT, past the page cache. A small file, hashed before it is written,
gets its temporary file in its blob's own folder (``blobs/ab/.tmp-…``): creations spread
over 256 folders run in parallel where one folder would serialise them, and the rename
stays in one folder. A larger file streams to ``tmp/`` (its folder is known only once it
is hashed). A crash leaves at most stale temporary files (`purge_temp`), never a partial
blob at its final path.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import mmap
import os
import re
import stat
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import blake3

from bifrost_core.errors import ConfigError
from bifrost_core.storage.blobstore.source import Source, strerror
from bifrost_core.storage.blobstore.temp_file import BLOB_MODE, O_DIRECT, TEMP_FLAGS, TempFile
from bifrost_core.storage.blobstore.tier import (
    CHUNK,
    DIGEST,
    SMALL_FILE,
    TEMP_MARK,
    BlobInfo,
    Pending,
    PutResult,
    Swept,
    Tier,
    unwritable,
)
from bifrost_core.storage.durability import sync_filesystem
from bifrost_core.storage.errors import BlobNotFound, storage_error

# Files from this size are written with O_DIRECT where the filesystem takes it: straight to
# the disk, not through the page cache. A batch's sync then has nothing left to write, and
# the disk is fed at its own pace rather than by the kernel's write-back, which here
# swung from 0.6 to 3 s per GiB: 1 MiB frames went from 1.3-1.5 s to ~0.9 s per GiB, large
# files from 0.5-1.8 s to 0.53-0.56 s. Below it, a file costs the same either way, and
# the page cache lets many small writes be merged.
DIRECT_FROM = 256 << 10
_BLOB_FOLDER = re.compile(r"[0-9a-f]{2}")
# A local tier's temporary files: mark, process id, store id, count (see LocalTier). gc
# removes files so named and nothing else.
_TEMP_NAME = re.compile(re.escape(TEMP_MARK) + r"[0-9]+-[0-9a-f]{12}-[0-9]+")


class LocalTier(Tier):
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
        self.direct = bool(O_DIRECT)
        # Temporary names: unique per process and store, cheaper than a uuid per file.
        self._temp_prefix = f"{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:12]}-"
        self._temp_count = itertools.count()

    def url(self, digest: str) -> str:
        return f"{self.blobs}/{digest[:2]}/{digest}"

    def put(self, path: str, *, stable: bool = False) -> PutResult | Pending:
        self._ensure_dir(self.tmp)  # and so the tier root, which each batch's sync opens
        return super().put(path, stable=stable)

    def put_once(self, src: Source) -> PutResult | Pending | None:
        # (list.pop and append are atomic: the pool needs no lock.)
        buf = self._free_buffers.pop() if self._free_buffers else _aligned_buffer(SMALL_FILE + 1)
        try:
            put = self._put_small if src.size <= SMALL_FILE else self._put_streamed
            return put(src, buf)
        finally:
            self._free_buffers.append(buf)

    def _put_small(self, src: Source, buf: memoryview) -> PutResult | Pending | None:
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
            return PutResult(src.path, digest, len(data), final, False)
        folder = os.path.dirname(final)
        self._ensure_dir(folder)
        tmp = self._new_temp(folder)
        with self._temp_file(tmp, src.path, large=len(data) >= DIRECT_FROM) as out:
            out.write(data)
        return Pending(src.path, digest, len(data), tmp, final, True, repair=size is not None)

    def _small_hash(self, path: str, digest: str) -> str | None:
        """BLAKE3 of a small blob read whole, or None if it is gone."""
        try:
            with open(path, "rb") as f:
                return blake3.blake3(f.read()).hexdigest()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(self.name, f"reading blob {digest}", exc) from exc

    def _put_streamed(self, src: Source, buf: memoryview) -> Pending | None:
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
        return Pending(src.path, digest, total, tmp, self.url(digest), False)

    def commit(self, pending: list[Pending]) -> list[PutResult]:
        # Data first, then names: a blob at its final path is always complete on disk.
        # The sync runs even when nothing is pending: a deduplicated blob may have been
        # placed by a crashed process whose rename never reached the disk.
        self._sync("syncing new blobs")
        done: list[PutResult] = []
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

    def discard(self, pending: list[Pending]) -> None:
        for p in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p.tmp)

    def _place(self, p: Pending, placed: set[str]) -> PutResult:
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
            return PutResult(p.source, p.digest, p.size, p.final, False)
        try:
            os.replace(p.tmp, p.final)
        except FileNotFoundError:  # first blob of its directory
            self._ensure_dir(os.path.dirname(p.final))
            os.replace(p.tmp, p.final)
        placed.add(p.digest)
        return PutResult(p.source, p.digest, p.size, p.final, True, repair)

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

    def _temp_file(self, tmp: str, source: str, *, large: bool) -> TempFile:
        """Create a temporary file for a blob; O_DIRECT for a large one where the filesystem
        takes it (one that refuses is not asked again)."""
        if large and self.direct:
            try:
                return TempFile(self, os.open(tmp, TEMP_FLAGS | O_DIRECT, BLOB_MODE), tmp, source, True)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise storage_error(self.name, f"storing {source}", exc) from exc
                self.direct = False
                with contextlib.suppress(FileNotFoundError):  # some kernels create it first
                    os.unlink(tmp)
        try:
            fd = os.open(tmp, TEMP_FLAGS, BLOB_MODE)
        except OSError as exc:
            raise storage_error(self.name, f"storing {source}", exc) from exc
        return TempFile(self, fd, tmp, source, False, writeback=large)

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
                    swept.skipped.append(f"{entry.path}: {strerror(exc)}")
        return swept

    def check(self, root: str) -> None:
        try:
            if not os.path.isdir(self.root):
                missing = not os.path.lexists(self.root)
                raise ConfigError(
                    f"storage tier {self.name}: {root} {'does not exist' if missing else 'is not a folder'}",
                    tier=self.name,
                )
            probe = f"{self.root}/{TEMP_MARK}probe-{uuid.uuid4().hex}"
            os.close(os.open(probe, TEMP_FLAGS, 0o600))
            os.unlink(probe)
        except OSError as exc:
            raise unwritable(self.name, root, exc) from exc


def _is_blob(entry: os.DirEntry[str], folder: str) -> bool:
    """A regular file named by a digest, in the folder of its first two digits."""
    return (
        DIGEST.fullmatch(entry.name) is not None
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
            swept.skipped.append(f"{path}: {strerror(exc)}")
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
            swept.skipped.append(f"{folder}: {strerror(exc)}")
        return []


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _aligned_buffer(size: int) -> memoryview:
    """A zeroed buffer starting on a page boundary (an anonymous mapping), as O_DIRECT needs."""
    return memoryview(mmap.mmap(-1, size))
