"""A source file open for a single read, able to tell whether it changed meanwhile."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from bifrost_core.storage.errors import SourceChanged, SourceUnreadable

# O_NONBLOCK: opening a FIFO must fail the regular-file check, not hang waiting for a writer.
_SOURCE_FLAGS = (
    os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
)


class Source:
    """One source file, open for a single read, able to tell whether it changed meanwhile."""

    __slots__ = ("fd", "mtime_ns", "path", "size", "stable")

    def __init__(self, path: str, *, stable: bool = False) -> None:
        """`stable`: nothing writes to the file while it is stored (another tier's blob),
        so a store may read it twice rather than copy it aside (a change is still caught)."""
        self.path = path
        self.stable = stable
        try:
            self.fd = os.open(path, _SOURCE_FLAGS)
        except OSError as exc:
            raise SourceUnreadable(path, f"cannot open: {strerror(exc)}") from exc
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

    def __enter__(self) -> Source:
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
            raise SourceUnreadable(self.path, f"cannot read: {strerror(exc)}") from exc
        return first if len(parts) == 1 else b"".join(parts)

    def readinto(self, buf: memoryview) -> int:
        try:
            return os.readv(self.fd, [buf])
        except OSError as exc:
            raise SourceUnreadable(self.path, f"cannot read: {strerror(exc)}") from exc

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


def strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)
