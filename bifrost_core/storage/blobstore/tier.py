"""What every tier backend shares: the content layout, what a put returns, and the `Tier`
base class, whose `put` reads a source again when it changed while being read."""

from __future__ import annotations

import abc
import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from bifrost_core.errors import BifrostError, ConfigError
from bifrost_core.storage.blobstore.source import Source
from bifrost_core.storage.errors import InvalidDigest, storage_error

MiB = 1 << 20
GiB = 1 << 30

# Files up to this size are read whole and hashed before anything is written, so content
# the tier already holds costs one read and no write.
SMALL_FILE = 4 * MiB
# Copy buffer of the streaming paths.
CHUNK = 4 * MiB

DIGEST = re.compile(r"[0-9a-f]{64}")
# Names of temporary files start so (hidden, and never a digest: listings skip them).
TEMP_MARK = ".tmp-"


@dataclass(frozen=True, slots=True)
class PutResult:
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
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
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


class Pending(NamedTuple):
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


class Tier(abc.ABC):
    """A tier backend; see BlobStore for the meaning of each method. `put` returns either
    a stored blob or, on tiers that sync per batch, a pending one for `commit`."""

    def put(self, path: str, *, stable: bool = False) -> PutResult | Pending:
        """Store one source; one that changes while read is read again, once, then refused
        (SourceChanged). `stable`: see Source."""
        with Source(path, stable=stable) as src:
            for _attempt in range(2):
                result = self.put_once(src)
                if result is not None:
                    return result
                src.rewind()
            raise src.gave_up()

    @abc.abstractmethod
    def put_once(self, src: Source) -> PutResult | Pending | None:
        """One read of `src` into the tier; None if the source changed meanwhile (nothing of
        that read is kept)."""

    def commit(self, pending: list[Pending]) -> list[PutResult]:
        return []

    def discard(self, pending: list[Pending]) -> None:
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


def unwritable(tier: str, root: str, exc: Exception) -> BifrostError:
    """The error of a root check that failed: no permission or a read-only store is the
    configuration's fault, anything else the store's."""
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EROFS:
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        return ConfigError(f"storage tier {tier}: cannot write to {root}: {detail}", tier=tier)
    if isinstance(exc, FileNotFoundError):
        return ConfigError(f"storage tier {tier}: {root} does not exist", tier=tier)
    return storage_error(tier, f"checking {root}", exc)
