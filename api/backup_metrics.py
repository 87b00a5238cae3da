"""The backups' gauges for `/metrics` (read with the database's figures, at most every
STORE_SECONDS): the last base backup's age and size, and on PostgreSQL the WAL archive's state
from pg_stat_archiver. The alert rules BifrostBackupTooOld and BifrostWalArchivingStalled
(infra/observability/alerts.yml) watch them."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from bifrost_core.backup import service
from bifrost_core.backup.settings import load_backup_settings
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.errors import BifrostError


def backup_metrics(database: Database, settings: Settings) -> list[Metric]:
    try:
        status = service.status(
            settings, load_backup_settings(), database if service.is_postgresql(settings) else None
        )
    except BifrostError:
        return [GaugeMetricFamily("bifrost_backup_readable", _READABLE, value=0)]
    # A gauge absent (never backed up, or the tool's repository unreadable) is what the
    # backup alert looks for too, beside an age too old.
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


_READABLE = "1 when the backups' state could be read (the tool's repository and pg_stat_archiver)"
