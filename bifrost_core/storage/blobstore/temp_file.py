"""A blob's temporary file in a local tier: written front to back, past the page cache
(O_DIRECT) where the filesystem takes it, removed unless the write completed."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import TYPE_CHECKING

from bifrost_core.storage.durability import start_writeback
from bifrost_core.storage.errors import storage_error

if TYPE_CHECKING:
    from bifrost_core.storage.blobstore.local import LocalTier

TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
O_DIRECT = getattr(os, "O_DIRECT", 0)
if O_DIRECT:  # Linux and the BSDs; Windows has neither O_DIRECT nor fcntl
    import fcntl
# O_DIRECT wants buffers, offsets and lengths aligned to the device's logical block: 4 KiB
# covers every common disk. A file's unaligned tail is written through the page cache.
_DIRECT_ALIGN = 4096
# Blobs are immutable, and published hard links share their inode: make them read-only.
BLOB_MODE = 0o444


class TempFile:
    """A blob's temporary file in a local tier, written front to back, closed on leaving
    the `with` block and removed if that block fails (or `abandon` was called).

    On an O_DIRECT file, whole blocks go straight to the disk; a tail shorter than a block
    (or everything, once the device refuses the alignment) goes through the page cache.
    Page-cache writes of a large file start their write-back at once, so the batch's sync
    finds little left to write.
    """

    __slots__ = ("direct", "fd", "keep", "offset", "path", "source", "tier", "writeback")

    def __init__(
        self, tier: LocalTier, fd: int, path: str, source: str, direct: bool, *, writeback: bool = True
    ) -> None:
        self.tier = tier
        self.fd = fd
        self.path = path
        self.source = source
        self.direct = direct
        self.writeback = writeback
        self.offset = 0
        self.keep = True

    def __enter__(self) -> TempFile:
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
                fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~O_DIRECT)
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
