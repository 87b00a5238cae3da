"""The backups' gauges for `/metrics` (read with the database's figures, at most every
STORE_SECONDS): the last base backup's age and size, and on PostgreSQL the WAL archive's state
from pg_stat_archiver. The alert rules BifrostBackupTooOld and BifrostWalArchivingStalled
(infra/observability/alerts.yml) watch them.

pgBackRest's repository is read in a thread of its own, at most every REPOSITORY_SECONDS: an
unreachable repository takes pgBackRest tens of seconds to give up, which a scrape must not
wait for. A scrape reports what the last read found (absent until the first read ends)."""

from __future__ import annotations

import threading
import time

from prometheus_client.core import GaugeMetricFamily, Metric

from bifrost_core.backup import service
from bifrost_core.backup.pgbackrest import PgBackRest, RepositoryInfo
from bifrost_core.backup.settings import BackupSettings, load_backup_settings
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.errors import BifrostError, StorageError

REPOSITORY_SECONDS = 60.0
# How long a scrape waits for the very first read of the repository.
FIRST_READ_SECONDS = 5.0
_READABLE = "1 when the backups' state could be read (the tool's repository and pg_stat_archiver)"


class RepositoryReader:
    """pgBackRest's info, refreshed in the background; `read()` answers the last one."""

    def __init__(self, backup: BackupSettings) -> None:
        self.backup = backup
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: RepositoryInfo | BifrostError = StorageError("pgBackRest's repository not read yet")
        self._read_at = float("-inf")
        self._reading = False

    def _refresh(self) -> None:
        try:
            result: RepositoryInfo | BifrostError = PgBackRest(self.backup).info()
        except BifrostError as exc:
            result = exc
        with self._lock:
            self._result, self._reading = result, False
        self._done.set()

    def read(self) -> RepositoryInfo:
        with self._lock:
            if not self._reading and time.monotonic() - self._read_at >= REPOSITORY_SECONDS:
                self._reading, self._read_at = True, time.monotonic()
                threading.Thread(target=self._refresh, daemon=True, name="backup-repository").start()
        self._done.wait(FIRST_READ_SECONDS)
        with self._lock:
            result = self._result
        if isinstance(result, BifrostError):
            raise result
        return result


_readers: dict[str, RepositoryReader] = {}


def backup_metrics(database: Database, settings: Settings) -> list[Metric]:
    try:
        backup = load_backup_settings()
    except BifrostError:
        return [GaugeMetricFamily("bifrost_backup_readable", _READABLE, value=0)]
    on_postgresql = service.is_postgresql(settings)
    reader = _readers.setdefault(backup.model_dump_json(), RepositoryReader(backup))
    status = service.status(
        settings,
        backup,
        database if on_postgresql else None,
        repository=reader.read if on_postgresql else None,
    )
    # A gauge absent (never backed up, or the repository unreadable) is what the backup alert
    # looks for too, beside an age too old.
    metrics = [GaugeMetricFamily("bifrost_backup_readable", _READABLE, value=0 if status.problems else 1)]
    if status.last_backup is not None:
        metrics += [
            GaugeMetricFamily("bifrost_backup_age_seconds", "Seconds since the last base backup ended",
                              value=status.last_backup["age_seconds"]),
            GaugeMetricFamily("bifrost_backup_size_bytes", "Size of the database in the last base backup",
                              value=status.last_backup["size"]),
        ]  # fmt: skip
    wal = status.wal
    if wal is not None:
        metrics += [
            GaugeMetricFamily("bifrost_wal_archive_failing", "1 when the last WAL archiving attempt failed",
                              value=1 if wal["failing"] else 0),
            GaugeMetricFamily("bifrost_wal_unarchived_segments", "Finished WAL segments not archived yet",
                              value=wal["unarchived_segments"]),
        ]  # fmt: skip
        if wal["age_seconds"] is not None:
            metrics.append(GaugeMetricFamily("bifrost_wal_archive_age_seconds",
                                             "Seconds since the last WAL segment was archived",
                                             value=wal["age_seconds"]))  # fmt: skip
    return metrics
