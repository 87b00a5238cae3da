"""What `bifrost backup create|status|restore` do, on either database.

SQLite (the embedded default): a copy by SQLite's backup API with a manifest of the stored
content, in a folder under BIFROST_BACKUP_ROOT. PostgreSQL: pgBackRest's base backups and
its WAL archive (fed by the server's `archive_command`), restored into a new data directory
that is started, replays the archive to its end and is promoted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bifrost_core.backup import archiver, sqlite
from bifrost_core.backup.pgbackrest import PgBackRest, RepositoryInfo
from bifrost_core.backup.settings import BackupSettings
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.errors import BifrostError, Conflict, DatabaseUnavailable, InvalidInput, StorageError
from bifrost_core.ingest.roots import blob_store

BACKUP_KINDS = ("full", "diff", "incr")
# How long a restored cluster may take to replay the archive and be promoted.
PROMOTE_TIMEOUT = 3600.0


def is_postgresql(settings: Settings) -> bool:
    return make_url(settings.database).get_backend_name() == "postgresql"


def sqlite_path(settings: Settings) -> Path:
    return Path(make_url(settings.database).database or "").expanduser()


@dataclass
class Created:
    database: str  # sqlite or postgresql
    location: str  # the backup folder, or pgBackRest's label
    finished_at: datetime
    size: int  # the database's bytes
    stored_size: int  # what the backup takes (pgBackRest: compressed, deduplicated)
    blobs: int | None = None  # SQLite: blobs in the manifest


def create(settings: Settings, backup: BackupSettings, *, kind: str = "full") -> Created:
    """One backup of the configured database: a SQLite copy, or a pgBackRest base backup."""
    if kind not in BACKUP_KINDS:
        raise InvalidInput(f"backup kind must be one of {', '.join(BACKUP_KINDS)}, not {kind!r}")
    if is_postgresql(settings):
        made = PgBackRest(backup).backup(kind)
        return Created("postgresql", made.label, made.finished_at, made.size, made.repository_size)
    # A SQLite copy is always whole: the kind is PostgreSQL's (the scheduled diffs copy SQLite too).
    copy = sqlite.create(sqlite_path(settings), backup.sqlite_root(settings), settings.tier_roots)
    return Created("sqlite", str(copy.folder), copy.created_at, copy.size, copy.size, copy.blobs)


@dataclass
class Status:
    database: str
    checked_at: datetime
    last_backup: dict[str, Any] | None = None
    wal: dict[str, Any] | None = None
    repository: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def backup_age(self) -> float | None:
        return None if self.last_backup is None else self.last_backup["age_seconds"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "checked_at": self.checked_at.isoformat(),
            "last_backup": self.last_backup,
            "wal": self.wal,
            "repository": self.repository,
            "problems": self.problems,
        }


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


def status(
    settings: Settings,
    backup: BackupSettings,
    database: Database | None = None,
    *,
    repository: Callable[[], RepositoryInfo] | None = None,
) -> Status:
    """The last base backup (time, size, age), and on PostgreSQL the WAL archive's state.

    `repository` reads pgBackRest's info (by default, now). What cannot be read (pgBackRest
    missing, its repository unreachable) is listed in `problems`; the rest is still answered."""
    now = datetime.now(UTC)
    if not is_postgresql(settings):
        found = sqlite.latest(backup.sqlite_root(settings))
        result = Status("sqlite", now)
        if found is not None:
            folder, manifest = found
            made = datetime.fromisoformat(manifest["created_at"])
            result.last_backup = {"location": str(folder), "finished_at": made.isoformat(),
                                  "age_seconds": _age(now, made), "size": manifest["database"]["size"],
                                  "blobs": manifest["storage"]["blobs"]}  # fmt: skip
        return result
    result = Status("postgresql", now)
    try:
        info = (repository or PgBackRest(backup).info)()
    except BifrostError as exc:
        result.problems.append(exc.message)
    else:
        result.repository = {"status": info.status, "backups": len(info.backups),
                             "wal_min": info.wal_min, "wal_max": info.wal_max}  # fmt: skip
        if info.last is not None:
            last = info.last
            result.last_backup = {"location": last.label, "type": last.type,
                                  "started_at": last.started_at.isoformat(),
                                  "finished_at": last.finished_at.isoformat(),
                                  "age_seconds": _age(now, last.finished_at), "size": last.size,
                                  "stored_size": last.repository_size}  # fmt: skip
    owned = database is None
    database = database or Database(settings.database, pool_size=1)
    try:
        state = archiver.read(database)
    except Exception as exc:  # any failure to ask the server is one problem, reported
        result.problems.append(f"cannot read pg_stat_archiver: {str(exc).splitlines()[0]}")
    else:
        archived_at = state.last_archived_at
        result.wal = {"archive_mode": state.archive_mode, "last_archived": state.last_archived_wal,
                      "last_archived_at": archived_at.isoformat() if archived_at else None,
                      "age_seconds": _age(now, archived_at), "archived_count": state.archived_count,
                      "failed_count": state.failed_count, "last_failed": state.last_failed_wal,
                      "failing": state.failing, "current": state.current_wal,
                      "unarchived_segments": state.unarchived_segments}  # fmt: skip
        if state.archive_mode == "off":
            result.problems.append("archive_mode is off: WAL is not archived (see infra/postgres)")
    finally:
        if owned:
            database.dispose()
    return result


def restore_sqlite(settings: Settings, folder: Path, *, force: bool) -> sqlite.SqliteRestore:
    def missing_in(tier: str, root: str, hashes: list[str]) -> set[str]:
        return blob_store(settings, root, tier).missing(hashes)

    folder = folder.expanduser().resolve()
    return sqlite.restore(folder, sqlite_path(settings), force=force, missing_in=missing_in)


@dataclass
class PgRestored:
    data: Path
    url: str  # what BIFROST_DATABASE_URL is to name
    started: bool
    seconds: float


def _server_bin(data: Path, program: str) -> str:
    """A program of the PostgreSQL release the data directory is of (Debian keeps each
    release's under /usr/lib/postgresql/N/bin), else the one on PATH."""
    version = (data / "PG_VERSION").read_text().strip()
    candidate = Path(f"/usr/lib/postgresql/{version}/bin/{program}")
    return str(candidate) if candidate.exists() else (shutil.which(program) or program)


def restore_postgres(
    settings: Settings,
    backup: BackupSettings,
    *,
    data: Path,
    port: int,
    force: bool = False,
    target_time: datetime | None = None,
    options: dict[str, str] | None = None,
    start: bool = True,
) -> PgRestored:
    """Restore the repository's latest backup into the data directory `data` for a server on
    `port` (with `options` added to its postgresql.auto.conf), then start it and wait until it
    has replayed the archive and been promoted. A data directory that holds anything is
    overwritten only with `force` (and never while a server runs on it); one this restore
    created is removed again when the restore fails."""
    began = time.monotonic()
    data = data.expanduser().absolute()
    occupied = data.exists() and any(data.iterdir())
    if occupied and not force:
        raise Conflict(f"data directory {data} is not empty: pass --force to overwrite it")
    if (data / "postmaster.pid").exists():
        raise Conflict(f"a PostgreSQL server runs on {data} (postmaster.pid): stop it first")
    tool = PgBackRest(backup)
    # Asked first: an unreachable repository is named as such (pgBackRest's restore says only
    # "no backup set found"), and nothing is made for a restore that cannot happen.
    if tool.info().last is None:
        raise StorageError("pgBackRest's repository holds no backup to restore")
    created = not data.exists()
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        if backup.run_as and os.geteuid() == 0:
            shutil.chown(data, backup.run_as, backup.run_as)
    except OSError as exc:
        raise StorageError(f"cannot make the data directory {data}: {exc.strerror}") from None
    try:
        tool.restore(data, delta=occupied, target_time=target_time)
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write("# set by bifrost backup restore\n")
            # The new primary goes on archiving into the same repository (on its new timeline);
            # pgBackRest checks that the server's directory is its pg1-path, so it is named.
            archive_command = " ".join(
                [backup.pgbackrest, f"--config={backup.pgbackrest_config}", f"--stanza={backup.stanza}",
                 f"--pg1-path={data}", "archive-push", "%p"]
            )  # fmt: skip
            settings_added = {"port": str(port), "archive_command": archive_command, **(options or {})}
            for name, value in settings_added.items():
                escaped = value.replace("'", "''")
                conf.write(f"{name} = '{escaped}'\n")
    except BaseException:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        raise
    url = make_url(settings.database).set(port=port)
    if start:
        _start_and_promote(backup, data, url.render_as_string(hide_password=False))
    return PgRestored(data, url.render_as_string(hide_password=True), start, time.monotonic() - began)


def _start_and_promote(backup: BackupSettings, data: Path, url: str) -> None:
    command = [_server_bin(data, "pg_ctl"), "-D", str(data), "-l", str(data / "restore.log"), "-w",
               "-t", str(int(PROMOTE_TIMEOUT)), "start"]  # fmt: skip
    if backup.run_as and os.geteuid() == 0:
        command = ["runuser", "-u", backup.run_as, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise DatabaseUnavailable(
            f"the restored server did not start (see {data / 'restore.log'}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    restored = Database(url, pool_size=1)
    deadline = time.monotonic() + PROMOTE_TIMEOUT
    try:
        while True:
            try:
                with restored.engine.connect() as connection:
                    if not connection.execute(text("SELECT pg_is_in_recovery()")).scalar():
                        return
            except Exception:  # not accepting connections yet: asked again
                time.sleep(0.2)
                continue
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(
                    f"the restored server did not finish its recovery in {PROMOTE_TIMEOUT:g} s"
                )
            time.sleep(0.2)
    finally:
        restored.dispose()
