"""Processes that ingest a delivery or run `storage gc`, for the tests that kill -9 one or
race the two (no Prefect: the batches run as the flow's batch task runs them).

    python -m tests.support.ingest_child ingest SOURCE BATCH_FILES [PAUSE]
    python -m tests.support.ingest_child serve

`ingest` runs once and prints one line of JSON. `serve` imports everything once and then
forks a process per command read from stdin (tab-separated), so that a test can start
dozens of them without paying the imports each time:

    start RESULT_FILE KILL_AT ingest SOURCE BATCH_FILES [PAUSE]  ->  the process id
    start RESULT_FILE KILL_AT gc STOP_FILE               ->  the process id
    wait PID                                             ->  its exit code (-9: killed)

A forked process writes its JSON to RESULT_FILE when it finishes. An ingest waits PAUSE
seconds where its blobs are stored and not yet leased, the window a concurrent gc must not
exploit. `gc` runs gc with no grace again and again until STOP_FILE exists. Settings come
from BIFROST_* (database, tier roots); KILL_AT (`-` for none) is BIFROST_TEST_KILL_AT, as
`batches.crash_point` reads it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.ingest import batches, planning, summaries, upkeep
from bifrost_core.scope import SYSTEM

GC_ROUNDS = 100


def ingest(database: Database, source: str, batch_files: str, pause: str = "0") -> dict:
    real_crash_point = batches.crash_point

    def pausing(name: str) -> None:
        if name == "stored":
            time.sleep(float(pause))
        real_crash_point(name)

    batches.crash_point = pausing
    settings = load_settings()
    plan = planning.plan_ingest(database, settings, project="DEMO", source=source, tier="hot")
    summary = summaries.summary_of(plan, dry_run=False)
    for group in batches.batches(plan.pending, max_files=int(batch_files), max_bytes=1 << 40):
        batch = batches.run_batch(
            database, settings, actor=SYSTEM, project="DEMO", tier="hot", source=plan.source, versions=group
        )
        summaries.merge(summary, batch)
    return {
        "created": len(summary.created),
        "repaired": summary.blobs_repaired,
        "problems": [p.message for p in summary.problems],
    }


def gc(database: Database, stop: str) -> dict:
    removed = rounds = 0
    while True:
        removed += upkeep.gc(database, load_settings(), grace_hours=0).blobs_removed
        rounds += 1
        if rounds == GC_ROUNDS or os.path.exists(stop):
            return {"rounds": rounds, "removed": removed}
        time.sleep(0.02)  # room for the ingest's transactions between two runs


def run(kind: str, args: list[str]) -> dict:
    database = Database(load_settings().database)
    try:
        return ingest(database, *args) if kind == "ingest" else gc(database, *args)
    finally:
        database.dispose()


def forked(result: str, kill_at: str, kind: str, args: list[str]) -> None:
    """The body of a forked process: never returns."""
    code = 1
    try:
        os.environ.pop("BIFROST_TEST_KILL_AT", None)
        if kill_at != "-":
            os.environ["BIFROST_TEST_KILL_AT"] = kill_at
        done = run(kind, args)
        with open(f"{result}.part", "w") as out:
            json.dump(done, out)
        os.replace(f"{result}.part", result)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        command, *args = line.rstrip("\n").split("\t")
        if command == "start":
            pid = os.fork()
            if pid == 0:
                forked(args[0], args[1], args[2], args[3:])
            print(pid, flush=True)
        else:
            _, status = os.waitpid(int(args[0]), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        print(json.dumps(run(sys.argv[1], sys.argv[2:])))
