"""Storage lifecycle benchmark: the archive move of 1 GiB to an S3 endpoint against `rclone copy`.

    .venv/bin/python -m bench.archive [--workdir DIR] [--size-mib 1024] [--sections move]

(from the repository root; moto's S3 server runs on a free loopback port, tests/support/s3.py;
`rclone` is Debian's package, `make tools`).

Section `move`: files of 1-100 MiB (seeded sizes, 1 GiB in all) are ingested into a local hot
tier of a fresh SQLite home, one version per file; the archive move of all of them (copy to
the S3 archive tier, read back and rehash every copy, record, remove the hot copies) runs in
a child process, and `rclone copy` of the same files to another prefix of the same endpoint
runs right after it. Printed: each one's wall time and MB/s, the ratio (target >= 0.8x
rclone) and each one's peak RSS (target <= 300 MB for the move). Nothing is asserted.

Sections are functions in SECTIONS, run in the order given with `--sections`, each handed
the same `Bench` (work folder, S3 endpoint); a restore drill of the database backups can
be added as its own section there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
PROJECT = "BENCH"


@dataclass
class Bench:
    work: Path
    s3: object  # tests.support.s3.S3Endpoint
    size_mib: int


def _files(root: Path, total_mib: int) -> list[Path]:
    """Files of 1-100 MiB (seeded), `total_mib` in all, one per shot folder, distinct bytes."""
    rng = random.Random(14)
    block = os.urandom(MiB)
    paths: list[Path] = []
    left = total_mib
    while left > 0:
        size = min(left, rng.randint(1, 100))
        left -= size
        path = root / "sq001" / f"sh{len(paths):04d}" / "plate" / "plate.mov"
        path.parent.mkdir(parents=True)
        with path.open("wb") as out:
            for i in range(size):
                out.write(len(paths).to_bytes(4, "big") + i.to_bytes(4, "big") + block[8:])
        paths.append(path)
    return paths


def _environment(bench: Bench, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env.update(bench.s3.env())  # type: ignore[attr-defined]
    env.update(
        BIFROST_HOME=str(home),
        BIFROST_DATABASE_URL=f"sqlite:///{home / 'bifrost.db'}",
        BIFROST_HOT_ROOT=str(home / "hot"),
        BIFROST_ARCHIVE_ROOT=bench.s3.url(f"archive-{home.name}"),  # type: ignore[attr-defined]
    )
    return env


def _set_up(env: dict[str, str], delivery: Path, shots: int) -> None:
    """A migrated database, project BENCH (closed, archive policy: every version) and the
    delivery ingested into its hot tier."""
    code = f"""
import sys
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.db import migrate
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import batches, planning
from bifrost_core.lifecycle import policies
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Project
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM

settings = load_settings()
database = Database(settings.database)
migrate.upgrade(database)
rules = [{{"regex": r"(?P<sequence>sq\\d+)/(?P<shot>sh\\d+)/(?P<task>[a-z]+)/[^/]+"}}]
with UnitOfWork(database) as uow:
    project = projects.create_project(uow.session, actor=SYSTEM, data=ProjectCreate(
        code="{PROJECT}", name="Bench", config={{"naming_rules": rules}}))
    sequence = projects.create_sequence(uow.session, actor=SYSTEM, project_id=project.id,
        data=SequenceCreate(code="sq001"))
    for n in range({shots}):
        projects.create_shot(uow.session, actor=SYSTEM, sequence_id=sequence.id,
            data=ShotCreate(code=f"sh{{n:04d}}"))
    uow.commit()
    project_id = project.id
with UnitOfWork(database) as uow:
    policies.set_policy(uow.session, settings, actor=SYSTEM, project_id=project_id,
        rules=policies.parse_rules({{"closed_project": True}}))
    uow.commit()
plan = planning.plan_ingest(database, settings, project="{PROJECT}", source=sys.argv[1], tier="hot")
for group in batches.batches(plan.pending, max_files=1000, max_bytes=1 << 40):
    batches.run_batch(database, settings, actor=SYSTEM, project="{PROJECT}", tier="hot",
        source=plan.source, versions=group)
with UnitOfWork(database) as uow:
    uow.session.get(Project, project_id).status = "closed"
    uow.commit()
"""
    os.makedirs(env["BIFROST_HOT_ROOT"], exist_ok=True)
    subprocess.run([sys.executable, "-c", code, str(delivery)], env=env, cwd=ROOT, check=True)


MOVE = f"""
import json
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.lifecycle import moves
from bifrost_core.scope import SYSTEM

settings = load_settings()
database = Database(settings.database)
report = moves.archive_project(database, settings, actor=SYSTEM, project="{PROJECT}", force=True)
print(json.dumps({{"versions": len(report.versions), "copied": report.blobs_copied,
    "released": report.blobs_released, "failures": report.failures}}))
"""


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run `command`: wall seconds, its own peak RSS in bytes (wait4), its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss * 1024, stdout


def _rclone_env(bench: Bench) -> dict[str, str]:
    s3 = bench.s3
    # The endpoint is plain HTTP on loopback; a CA bundle set for other tools only trips
    # rclone's S3 client ("unable to load custom CA bundle").
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return {
        **inherited,
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": s3.endpoint_url,  # type: ignore[attr-defined]
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3.env()["AWS_ACCESS_KEY_ID"],  # type: ignore[attr-defined]
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3.env()["AWS_SECRET_ACCESS_KEY"],  # type: ignore[attr-defined]
        "RCLONE_CONFIG_BENCH_REGION": s3.env()["AWS_DEFAULT_REGION"],  # type: ignore[attr-defined]
    }


def move(bench: Bench) -> None:
    """The archive move against `rclone copy` of the same files to the same endpoint."""
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed (make tools)")
    delivery = bench.work / "delivery"
    files = _files(delivery, bench.size_mib)
    total = sum(path.stat().st_size for path in files)
    home = bench.work / "home"
    env = _environment(bench, home)
    _set_up(env, delivery, len(files))
    print(f"data: {len(files)} files, {total / MiB:,.0f} MiB (1-100 MiB each), hot tier local, archive on S3")

    wall, rss, out = _timed([sys.executable, "-c", MOVE], env)
    moved = json.loads(out.strip().splitlines()[-1])
    if moved["failures"] or moved["released"] != len(files):
        raise SystemExit(f"the move did not complete: {moved}")
    # rclone: its default 4 transfers, like the archive tier's 4 upload threads.
    bucket = bench.s3.bucket  # type: ignore[attr-defined]
    r_wall, r_rss, _ = _timed(
        ["rclone", "copy", str(delivery), f"bench:{bucket}/rclone", "--transfers", "4"], _rclone_env(bench)
    )
    ours, theirs = total / wall / 1e6, total / r_wall / 1e6
    print(f"archive move (copy, read back + BLAKE3, record, release): {wall:6.1f} s  {ours:7.1f} MB/s  "
          f"peak RSS {rss / 1e6:6.0f} MB (target <= 300 MB)")  # fmt: skip
    print(f"rclone copy (upload, MD5 checked):                        {r_wall:6.1f} s  {theirs:7.1f} MB/s  "
          f"peak RSS {r_rss / 1e6:6.0f} MB")  # fmt: skip
    print(f"ratio: {ours / theirs:.2f}x rclone's throughput (target >= 0.8x)")


# Sections by name, run in the order `--sections` gives; each takes the shared Bench.
SECTIONS: dict[str, Callable[[Bench], None]] = {"move": move}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Where to make the data (a temporary folder)"
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="MiB of files to move (default 1 GiB)")
    parser.add_argument("--sections", default="move", help=f"Comma-separated, of: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    names = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    from tests.support.s3 import running_s3

    work = Path(tempfile.mkdtemp(prefix="bifrost-bench-archive-", dir=args.workdir))
    try:
        with running_s3() as s3:
            bench = Bench(work=work, s3=s3, size_mib=args.size_mib)
            for name in names:
                print(f"== {name}")
                SECTIONS[name](bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
