"""Backups of the embedded default's SQLite database.

A backup is a folder `bifrost-<UTC time>` holding `bifrost.db`, a consistent copy made online
by SQLite's backup API (writers may go on meanwhile), and `manifest.json`: the copy's size and
SHA-256, its schema revision, and the stored content it records (every blob: hash, size, tier
locations). The folder is written under a hidden temporary name and renamed when complete, so
a backup folder is never half-written. A restore checks the copy against its manifest before
it replaces anything, and replaces the database in one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bifrost_core.errors import Conflict, DamagedContent, InvalidInput, NotFound, StorageError
from bifrost_core.storage.blobstore.tier import root_of

FORMAT = "bifrost-sqlite-backup/1"
DATABASE_FILE = "bifrost.db"
MANIFEST_FILE = "manifest.json"
PREFIX = "bifrost-"
PARTIAL = ".partial-"


@dataclass
class SqliteBackup:
    folder: Path
    created_at: datetime
    size: int
    blobs: int
    blob_bytes: int


@dataclass
class SqliteRestore:
    database: Path
    backup: Path
    blobs: int
    # Blob locations the manifest lists that their tier does not hold now (stat or HEAD each).
    missing: list[str]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_database(source: Path, target: Path) -> None:
    """Copy `source` into `target` with SQLite's backup API: a consistent snapshot, taken
    in steps so that writers are held off only for a step at a time."""
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst, pages=4096)
        # A self-contained file: no -wal beside it to carry along.
        dst.execute("PRAGMA journal_mode=DELETE")


def _stored_content(database: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """The schema revision and every blob (hash, size, tier locations) the database records."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise DamagedContent(f"the copy of the database fails SQLite's check: {check}")
        try:
            revision = db.execute("SELECT version_num FROM alembic_version").fetchone()
            rows = db.execute(
                "SELECT b.hash, b.size, l.tier, l.url FROM blobs b "
                "LEFT JOIN blob_locations l ON l.blob_id = b.id ORDER BY b.hash, l.tier"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{database} is not a Bifrost database: {exc}") from None
    blobs: dict[str, dict[str, Any]] = {}
    for digest, size, tier, url in rows:
        blob = blobs.setdefault(digest, {"hash": digest, "size": size, "locations": []})
        if tier is not None:
            blob["locations"].append({"tier": tier, "url": url})
    return (revision[0] if revision else None), list(blobs.values())


def _content_digest(blobs: list[dict[str, Any]]) -> str:
    """One hash over the blobs' hashes and sizes: what a restore compares with its copy."""
    digest = hashlib.sha256()
    for blob in sorted(blobs, key=lambda b: b["hash"]):
        digest.update(f"{blob['hash']}:{blob['size']}\n".encode())
    return digest.hexdigest()


def create(database: Path, root: Path, tier_roots: dict[str, str]) -> SqliteBackup:
    """Back `database` up into a new folder under `root` (made if missing)."""
    if not database.is_file():
        raise NotFound(f"no SQLite database at {database}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        name = f"{PREFIX}{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z"
        partial = root / f"{PARTIAL}{name}"
        partial.mkdir()
    except OSError as exc:
        raise StorageError(f"backup folder {root} is not writable: {exc.strerror}") from None
    try:
        copy = partial / DATABASE_FILE
        _copy_database(database, copy)
        revision, blobs = _stored_content(copy)
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "source": str(database),
            "database": {"file": DATABASE_FILE, "size": copy.stat().st_size, "sha256": _sha256(copy),
                         "revision": revision},
            "storage": {"tier_roots": tier_roots, "blobs": len(blobs),
                        "bytes": sum(blob["size"] for blob in blobs),
                        "content_sha256": _content_digest(blobs)},
            "blobs": blobs,
        }  # fmt: skip
        (partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        for path in (copy, partial / MANIFEST_FILE, partial):
            _fsync(path)
        final = root / name
        partial.rename(final)
        _fsync(root)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise StorageError(f"backup into {root} failed: {getattr(exc, 'strerror', None) or exc}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return SqliteBackup(final, now, manifest["database"]["size"], len(blobs), manifest["storage"]["bytes"])


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a backup folder, checked to be one."""
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise NotFound(f"no backup folder {folder}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InvalidInput(f"{folder} is not a Bifrost backup (no readable {MANIFEST_FILE})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{folder} is not a Bifrost SQLite backup ({MANIFEST_FILE} is not one)")
    return manifest


def latest(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete backup under `root` and its manifest (None: there is none)."""
    if not root.is_dir():
        return None
    for folder in sorted(root.glob(f"{PREFIX}*"), reverse=True):
        try:
            return folder, read_manifest(folder)
        except (InvalidInput, NotFound):
            continue
    return None


def check(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and the blobs of a backup, once its copy is found to be what the manifest
    says: same bytes (SHA-256), a sound SQLite file, the same stored content."""
    manifest = read_manifest(folder)
    copy = folder / manifest["database"]["file"]
    if not copy.is_file() or _sha256(copy) != manifest["database"]["sha256"]:
        raise DamagedContent(f"backup {folder} is damaged: {copy.name} does not match its manifest")
    _revision, blobs = _stored_content(copy)
    if _content_digest(blobs) != manifest["storage"]["content_sha256"]:
        raise DamagedContent(f"backup {folder} is damaged: its blobs differ from its manifest")
    return manifest, blobs


def restore(folder: Path, database: Path, *, force: bool, missing_in: Any) -> SqliteRestore:
    """Replace (or create) `database` with the backup in `folder`.

    An existing database is replaced only with `force`. `missing_in(tier, root, hashes)`
    answers which of the blobs a tier root does not hold; the blobs of the manifest missing
    from their tiers are reported, not refused (run `bifrost verify` after a restore)."""
    _manifest, blobs = check(folder)
    if database.exists() and database.stat().st_size > 0 and not force:
        raise Conflict(f"database {database} exists: pass --force to replace it with the backup")
    copy = folder / DATABASE_FILE
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        if database.exists():
            # Into the live file, one transaction: no moment without a database, and a -wal
            # file beside it stays consistent with what SQLite wrote.
            with (
                closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as src,
                closing(sqlite3.connect(database, timeout=30)) as dst,
            ):
                src.backup(dst)
        else:
            partial = database.with_name(f"{PARTIAL}{database.name}")
            try:
                _copy_database(copy, partial)
                _fsync(partial)
                partial.rename(database)
            finally:
                partial.unlink(missing_ok=True)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot restore into {database}: {exc}") from None
    return SqliteRestore(database, folder, len(blobs), _missing(blobs, missing_in))


def _missing(blobs: list[dict[str, Any]], missing_in: Any) -> list[str]:
    by_root: dict[tuple[str, str], list[str]] = defaultdict(list)
    for blob in blobs:
        for location in blob["locations"]:
            by_root[location["tier"], root_of(location["url"], blob["hash"])].append(blob["hash"])
    gone: list[str] = []
    for (tier, root), hashes in by_root.items():
        gone += [f"{tier}:{digest}" for digest in sorted(missing_in(tier, root, hashes))]
    return gone
