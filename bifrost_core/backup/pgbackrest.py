"""pgBackRest, the PostgreSQL backup tool Bifrost drives (infra/postgres/README.md says why).

PostgreSQL pushes each WAL segment to pgBackRest's repository through its `archive_command`;
`bifrost backup create` takes base backups (`pgbackrest backup`), `status` reads `pgbackrest
info`, and `restore` makes a new data directory from the repository (`pgbackrest restore`),
replaying the archived WAL up to its end or to a point in time. pgBackRest runs on the
database's host as the server's operating-system user (`BIFROST_BACKUP_RUN_AS` when Bifrost
runs as root), with the configuration file `BIFROST_BACKUP_PGBACKREST_CONFIG`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bifrost_core.backup.settings import BackupSettings
from bifrost_core.errors import ConfigError, StorageError

# A base backup of a studio's database takes minutes to hours; a status is a few requests.
BACKUP_TIMEOUT = 24 * 3600
INFO_TIMEOUT = 120
# pgBackRest's stanza states that are readable: ok, no stanza yet, no backup yet.
READABLE = (0, 1, 2)


@dataclass
class BaseBackup:
    label: str
    type: str  # full, diff or incr
    started_at: datetime
    finished_at: datetime
    size: int  # the database's size
    repository_size: int  # what it takes in the repository (compressed, deduplicated)
    wal_start: str
    wal_stop: str


@dataclass
class RepositoryInfo:
    status: str  # pgBackRest's "ok", or what is wrong
    backups: list[BaseBackup]
    wal_min: str | None
    wal_max: str | None

    @property
    def last(self) -> BaseBackup | None:
        return self.backups[-1] if self.backups else None


def _error_line(output: str) -> str:
    """pgBackRest's first error as one line (it prints `ERROR: [055]: message` and hints)."""
    for line in output.splitlines():
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "failed without a message"


class PgBackRest:
    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings

    def command(self, *args: str) -> list[str]:
        base = [self.settings.pgbackrest, f"--config={self.settings.pgbackrest_config}",
                f"--stanza={self.settings.stanza}", *args]  # fmt: skip
        if self.settings.run_as and os.geteuid() == 0:
            return ["runuser", "-u", self.settings.run_as, "--", *base]
        return base

    def run(self, *args: str, timeout: float = INFO_TIMEOUT) -> str:
        if shutil.which(self.settings.pgbackrest) is None:
            raise ConfigError(
                f"pgBackRest is not installed ({self.settings.pgbackrest} not found; Debian: pgbackrest)"
            )
        if not os.access(self.settings.pgbackrest_config, os.R_OK):
            raise ConfigError(
                f"pgBackRest's configuration {self.settings.pgbackrest_config} cannot be read "
                "(BIFROST_BACKUP_PGBACKREST_CONFIG)"
            )
        try:
            done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StorageError(f"pgbackrest {args[0]} did not finish in {timeout:g} s") from None
        if done.returncode != 0:
            raise StorageError(f"pgbackrest {args[0]}: {_error_line(done.stderr + done.stdout)}")
        return done.stdout

    def backup(self, kind: str) -> BaseBackup:
        """A base backup (`full`, `diff` or `incr`); the stanza is created on first use."""
        self.run("stanza-create")
        self.run("backup", f"--type={kind}", timeout=BACKUP_TIMEOUT)
        last = self.info().last
        if last is None:
            raise StorageError("pgbackrest backup ended but its repository lists no backup")
        return last

    def info(self) -> RepositoryInfo:
        stanzas: list[dict[str, Any]] = json.loads(self.run("info", "--output=json"))
        if not stanzas:
            raise StorageError(f"pgbackrest knows no stanza {self.settings.stanza!r}")
        stanza = stanzas[0]
        if stanza["status"]["code"] not in READABLE:
            reasons = [repo["status"]["message"] for repo in stanza.get("repo", []) if repo["status"]["code"]]
            raise StorageError(f"pgbackrest info: {'; '.join(reasons) or stanza['status']['message']}")
        backups = [
            BaseBackup(
                label=item["label"],
                type=item["type"],
                started_at=datetime.fromtimestamp(item["timestamp"]["start"], UTC),
                finished_at=datetime.fromtimestamp(item["timestamp"]["stop"], UTC),
                size=item["info"]["size"],
                repository_size=item["info"]["repository"]["size"],
                wal_start=item["archive"]["start"],
                wal_stop=item["archive"]["stop"],
            )
            for item in stanza.get("backup", [])
            if not item.get("error")
        ]
        archives = stanza.get("archive", [])
        current = archives[-1] if archives else {}
        return RepositoryInfo(
            status=stanza["status"]["message"],
            backups=sorted(backups, key=lambda b: b.finished_at),
            wal_min=current.get("min"),
            wal_max=current.get("max"),
        )

    def restore(self, data: Path, *, delta: bool, target_time: datetime | None) -> None:
        """Restore the latest backup into the data directory `data`, set to replay the
        archive to its end (or to `target_time`) and then be promoted."""
        args = ["restore", f"--pg1-path={data}"]
        if delta:
            args.append("--delta")
        if target_time is not None:
            args += ["--type=time", f"--target={target_time.isoformat(sep=' ')}", "--target-action=promote"]
        self.run(*args, timeout=BACKUP_TIMEOUT)
