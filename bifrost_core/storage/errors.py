"""Errors of the blob store, the source scanner, naming rules and published path templates.

All derive from `bifrost_core.errors.BifrostError`, so the API and the CLI render them
with their one handler: a one-line message that names the file, tier or rule at fault.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING

from bifrost_core.errors import BifrostError, ConfigError, InvalidInput, NotFound, StorageError

if TYPE_CHECKING:
    from bifrost_core.storage.blobstore import PutResult

__all__ = [
    "BlobNotFound",
    "InvalidDigest",
    "NamingRuleError",
    "PathTemplateError",
    "PutFailed",
    "SourceChanged",
    "SourceError",
    "SourceUnreadable",
    "StorageError",
    "StorageFull",
    "VerificationFailed",
    "storage_error",
]


class BlobNotFound(NotFound):
    code = "blob_not_found"

    def __init__(self, digest: str, where: str) -> None:
        super().__init__(f"blob {digest} is not in {where}", digest=digest, tier=where)
        self.digest = digest


class InvalidDigest(InvalidInput):
    code = "invalid_digest"

    def __init__(self, digest: object) -> None:
        super().__init__(f"not a BLAKE3 hex digest: {digest!r}")


class SourceError(InvalidInput):
    """A source file could not be stored because of the file itself (not the store)."""

    code = "source_error"

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}", path=str(path), reason=reason)
        self.path = str(path)
        self.reason = reason


class SourceUnreadable(SourceError):
    code = "source_unreadable"


class SourceChanged(SourceError):
    code = "source_changed"


class StorageFull(StorageError):
    code = "storage_full"


class VerificationFailed(StorageError):
    code = "verification_failed"


class PutFailed(InvalidInput):
    """Some sources of a batch could not be stored; the others were (durably).

    `stored` lists the blobs stored for the sources that succeeded, in input order;
    `failures` the errors of the others, in input order.
    """

    code = "put_failed"

    def __init__(self, stored: Sequence[PutResult], failures: Sequence[SourceError]) -> None:
        shown = "; ".join(str(f) for f in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        total = len(stored) + len(failures)
        super().__init__(
            f"{len(failures)} of {total} files could not be stored: {shown}{more}",
            failed=[f.path for f in failures],
        )
        self.stored = list(stored)
        self.failures = list(failures)


class NamingRuleError(InvalidInput):
    code = "invalid_naming_rule"


class PathTemplateError(InvalidInput):
    code = "invalid_path_template"


def storage_error(tier: str, action: str, exc: BaseException) -> BifrostError:
    """The error for a failure of the store while doing `action` on `tier`: StorageFull for
    ENOSPC/EDQUOT, ConfigError for a bucket that does not exist (no retry can help: the
    tier's root is wrong), else a StorageError with the OS or client error in one line."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"storage tier {tier} is full: {action}: {exc.strerror or exc}", tier=tier)
    bucket = _missing_bucket(exc)
    if bucket is not None:
        return ConfigError(f"storage tier {tier}: bucket {bucket} does not exist ({action})", tier=tier)
    detail = (exc.strerror or str(exc)) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
    return StorageError(f"storage tier {tier}: {action}: {detail}", tier=tier)


def _missing_bucket(exc: BaseException) -> str | None:
    """The bucket named by a NoSuchBucket answer (botocore's, or s3fs's translation of it,
    which keeps it as the cause), else None."""
    for error in (exc, exc.__cause__):
        details = (getattr(error, "response", None) or {}).get("Error") or {}
        if details.get("Code") == "NoSuchBucket":
            return str(details.get("BucketName") or "?")
    return None
