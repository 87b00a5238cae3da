"""PostgreSQL's own account of its WAL archiving (`pg_stat_archiver`): the last segment
archived and when, the last failure, and how many finished segments wait to be archived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from bifrost_core.db.database import Database


@dataclass
class ArchiverState:
    archive_mode: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None
    current_wal: str
    # Finished segments not archived yet: the data a failure now would lose to the archive.
    unarchived_segments: int

    @property
    def failing(self) -> bool:
        """The last attempt failed (a failure newer than the last success)."""
        if self.last_failed_at is None:
            return False
        return self.last_archived_at is None or self.last_failed_at > self.last_archived_at


def segment_number(wal_file: str, segment_size: int) -> int:
    """The position of a WAL file (`TTTTTTTTXXXXXXXXYYYYYYYY`) in its timeline, in segments."""
    return int(wal_file[8:16], 16) * (0x100000000 // segment_size) + int(wal_file[16:24], 16)


def read(database: Database) -> ArchiverState:
    with database.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, "
                "last_archived_time, failed_count, last_failed_wal, last_failed_time, "
                "pg_walfile_name(pg_current_wal_lsn()), "
                "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') "
                "FROM pg_stat_archiver"
            )
        ).one()
    mode, archived, last_wal, last_at, failed, failed_wal, failed_at, current, segment_size = row
    # A `.backup` file names the segment it is in; a `.history` file (a new timeline) none.
    last_segment = last_wal[:24] if last_wal and not last_wal.endswith(".history") else None
    waiting = 0
    if last_segment and last_segment[:8] == current[:8]:
        waiting = segment_number(current, segment_size) - segment_number(last_segment, segment_size) - 1
    return ArchiverState(
        archive_mode=mode,
        archived_count=archived,
        last_archived_wal=last_wal,
        last_archived_at=last_at,
        failed_count=failed,
        last_failed_wal=failed_wal,
        last_failed_at=failed_at,
        current_wal=current,
        unarchived_segments=max(waiting, 0),
    )
