"""Restore drill benchmark: the drill of tests/infra/test_restore_drill.py with the archive_timeout
infra/postgres ships (60 s), on a database grown first (figures printed, never asserted):

    .venv/bin/python -m bench.restore_drill [--archive-timeout 60] [--write-after 150] [--rows 1000000]

A new PostgreSQL cluster archives its WAL with pgBackRest to an S3 bucket (moto behind HAProxy's
TLS, loopback); Bifrost's schema is migrated in and --rows blob records fill it (the catalogue
of a studio's stored content); then a writer publishes versions through bifrost_core's services
while `bifrost backup create` runs and for --write-after seconds after it; the cluster is killed
with -9 and its data directory removed; `bifrost backup restore` makes a new cluster and the API
answers on it (tests/support/restore_drill.py). Targets: RPO <= 2 min (data lost: from the last
surviving commit to the failure), RTO <= 5 min (from the failure to the API's answer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

RPO_TARGET, RTO_TARGET = 120.0, 300.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive-timeout", type=int, default=60)
    parser.add_argument("--write-after", type=float, default=150.0, help="seconds of writes after the backup")
    parser.add_argument("--rows", type=int, default=1_000_000, help="blob records loaded before the drill")
    options = parser.parse_args()

    from bifrost_core.db.database import Database
    from tests.support.restore_drill import run_drill

    def preload(database: Database) -> None:
        began = time.monotonic()
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO blobs (hash, size, created_at) SELECT md5(i::text) || md5((-i)::text), "
                    "i % 100000000, now() FROM generate_series(1, :rows) AS i"
                ),
                {"rows": options.rows},
            )
        print(f"loaded {options.rows:,} blob records in {time.monotonic() - began:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bifrost-drill-") as home:
        result = run_drill(
            Path(home), archive_timeout=options.archive_timeout, write_after_backup=options.write_after,
            preload=preload, pause=0.2,
        )  # fmt: skip
    print(result.report())
    lost = len(result.committed) - len(result.survived)
    print(
        f"versions lost: {max(lost, 0)} (committed in the last {result.rpo_seconds:.1f} s before the failure)"
    )
    state = "OK" if result.verify.ok else "DAMAGED"
    print(f"verify of the storage: {state} ({result.verify.checked} blobs); API answered {result.api_status}")
    print(f"RPO {result.rpo_seconds:.1f} s (target <= {RPO_TARGET:.0f} s: "
          f"{'met' if result.rpo_seconds <= RPO_TARGET else 'MISSED'}); "
          f"RTO {result.rto_seconds:.1f} s (target <= {RTO_TARGET:.0f} s: "
          f"{'met' if result.rto_seconds <= RTO_TARGET else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
