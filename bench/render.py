"""Render benchmark: prints figures, asserts nothing.

    .venv/bin/python -m bench.render [--chunks 12] [--seconds 1.0] [--workdir DIR]

Farm section: a local Prefect server (on PostgreSQL), the registry's deployments, a CPU
worker and two GPU workers (1 and 2 GPUs: 3 slots) as processes, as the farm tests run them
(tests/support/farm.py, workers polling every second); then one job of `--chunks` one-frame
chunks whose command (the tests' fake renderer) renders for `--seconds`. From what was
recorded (the chunks' rows and the renderer's own start and end times):

- delay from a chunk becoming runnable to its command starting: a chunk is runnable when
  the job is submitted and a GPU slot is free for it (the first slots at submit, then as
  chunks finish, in the order they started);
- overhead per chunk beyond the command's own run time: runnable to recorded end of the
  chunk, minus the command's run time.

Targets (issue 12): median delay <= 2 s, median overhead <= 1 s.
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


_created: list[str] = []


def make_database() -> str:
    import psycopg

    from tests.support.services import PG_SERVER

    name = f"bifrost_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    _created.append(name)
    return f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{name}"


def drop_databases() -> None:
    import psycopg

    from tests.support.services import PG_SERVER

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        for name in _created:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def farm_figures(chunks: int, seconds: float, workdir: Path) -> dict[str, list[float]]:
    from tests.support.farm import HOSTS, fake_command, records, running_farm

    slots = sum(HOSTS.values())
    with running_farm(workdir / "farm", make_database) as farm:
        time.sleep(5)  # the workers' first poll
        record = workdir / "runs.jsonl"
        submitted = time.time()
        job_id = farm.submit(
            fake_command(record, "--sleep", str(seconds)), frames=f"1-{chunks}", chunk_size=1, timeout=600
        )
        job = farm.wait_job(job_id, {"completed", "failed"}, timeout=600)
        if job.state != "completed":
            raise SystemExit(f"the benchmark's job failed: {job.report}")
        rows = {row.index: row for row in farm.chunks(job_id)}
        ran = {int(line["tag"].split(".")[1]): line for line in records(record) if line["event"] == "end"}
    # Slots free at submit; each chunk (in the order commands started) takes the earliest free.
    free = [submitted] * slots
    delays, overheads, commands = [], [], []
    for index in sorted(ran, key=lambda index: ran[index]["start"]):
        runnable = max(heapq.heappop(free), submitted)
        line, row = ran[index], rows[index]
        finished = row.finished_at.timestamp()
        command = line["end"] - line["start"]
        delays.append(line["start"] - runnable)
        overheads.append(finished - runnable - command)
        commands.append(command)
        heapq.heappush(free, finished)
    return {"delay": delays, "overhead": overheads, "command": commands}


def show(name: str, values: list[float], target: float | None = None) -> None:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    aim = f"  (target <= {target:.1f} s)" if target is not None else ""
    print(
        f"  {name:<34} median {statistics.median(values):6.2f} s   p90 {p90:6.2f} s   "
        f"max {ordered[-1]:6.2f} s{aim}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bifrost-bench-render-"))
    print(f"farm: {args.chunks} chunks of {args.seconds:.1f} s on 2 GPU workers (3 slots); work in {workdir}")
    try:
        figures = farm_figures(args.chunks, args.seconds, workdir)
    finally:
        drop_databases()
    show("runnable -> command started", figures["delay"], 2.0)
    show("overhead per chunk beyond command", figures["overhead"], 1.0)
    show("command run time", figures["command"])


if __name__ == "__main__":
    main()
