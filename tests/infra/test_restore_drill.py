"""The timed restore drill (issue 14) on real PostgreSQL, pgBackRest and an S3 bucket behind TLS:
Bifrost writes continuously while a base backup runs and WAL is archived, the cluster is
destroyed, restored into a new one, and Bifrost pointed at it (tests/support/restore_drill.py).

archive_timeout is 5 s here (infra/ ships 60 s; bench/restore_drill.py runs that)."""

from __future__ import annotations

import pytest

from tests.support.restore_drill import run_drill

ARCHIVE_TIMEOUT = 5
# Beyond archive_timeout: the archive_command's own push to S3 and the server's wake-ups, on a
# loaded machine.
MARGIN = 10.0
# Writes go on this long after the base backup: longer than the window that may be lost, so
# that commits the backup does not hold must come back from the archived WAL.
WRITE_AFTER_BACKUP = 30.0


@pytest.mark.slow
def test_restore_drill_loses_nothing_older_than_archive_timeout(tmp_path):
    result = run_drill(
        tmp_path / "home", archive_timeout=ARCHIVE_TIMEOUT, write_after_backup=WRITE_AFTER_BACKUP
    )
    print(result.report())

    committed = [number for number, _ in result.committed]
    assert len(committed) > 20, "the writer published throughout the drill"
    # What survived is a prefix of what was committed, without a hole; beyond it at most the
    # one commit whose answer the failure cut off.
    assert result.survived == list(range(1, len(result.survived) + 1))
    assert committed == list(range(1, len(committed) + 1))
    assert len(result.survived) <= len(committed) + 1
    assert result.lost_before(ARCHIVE_TIMEOUT + MARGIN) == [], (
        "a commit older than the archive window was lost"
    )
    # Commits after the base backup ended came back from the archived WAL, not the backup alone.
    assert result.survived_after_backup() > 0
    assert result.verify.ok and result.verify.checked >= len(result.survived)
    assert result.archives_after_restore, "the restored primary archives its WAL into the repository"
    assert result.api_status == 200 and result.api_projects == ["DRILL"]
    assert result.restored_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
