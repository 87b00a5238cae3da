"""Ingest benchmark: generates data sets, ingests them with the ingest flow, prints figures.

    .venv/bin/python -m bench.ingest [--workdir DIR] [--repeat 3] [--sets A,B,C,S3,SERVER]

(from the repository root: set S3 runs moto's server with tests/support/s3.py).

Data sets: (A) 10,000 files of 4-64 KiB in a shot tree (50 shots x 2 tasks x 100 frames);
(B) 10 files of 100 MiB (one movie per shot); (C) one 1,000-frame sequence of 1 MiB
frames; (S3) set B into a tier on a local S3 endpoint (moto's server), with boto3's own
upload of the same files as the endpoint's reference.

For each set and repetition, on a fresh SQLite database and tier (the embedded default,
DB registration included): `cp -r` of the tree (and `cp -r` + `sync`, its durable
equivalent), a BLAKE3 hash of every file (the physical references), then the ingest in a
child process against a Prefect server the benchmark starts, then a rerun with nothing
changed, then (set A) a rerun with 1% of the files changed. Reported: files/s and MB/s
of the flow (Prefect's recorded run time, start to end), process wall time, peak RSS of
the child, the medians over the repetitions, and those medians next to the issue's
targets. Nothing here asserts anything.

(SERVER) whole `bifrost` commands as typed, with the home's persistent Prefect server up
(`bifrost server start`, flow commands served by its warm runner): a one-file ingest, set A,
set A on the embedded default after the first command (which starts the server itself), and
`bifrost --help`, next to issue #12's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deployments.local_server import local_prefect_server

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
PROJECT = "BENCH"
# The admin the set-up makes (`initialise` on a new home) and the ingest runs as.
OPERATOR = "bench"


# --------------------------------------------------------------------------- data sets


def make_a(root: Path) -> None:
    rng = random.Random(1)
    for s in range(50):
        for task in ("plate", "comp"):
            folder = root / f"sq{s // 10 + 1:03d}" / f"sh{s:04d}" / task
            folder.mkdir(parents=True)
            for frame in range(1001, 1101):
                (folder / f"{task}.{frame}.exr").write_bytes(os.urandom(rng.randint(4 << 10, 64 << 10)))


def make_b(root: Path) -> None:
    block = os.urandom(MiB)
    for s in range(10):
        folder = root / "sq001" / f"sh{s:04d}" / "plate"
        folder.mkdir(parents=True)
        with (folder / "plate.mov").open("wb") as out:
            for i in range(100):
                out.write(bytes([s, i]) + block[2:])


def make_c(root: Path) -> None:
    folder = root / "sq001" / "sh0000" / "plate"
    folder.mkdir(parents=True)
    block = os.urandom(MiB)
    for frame in range(1001, 2001):
        (folder / f"plate.{frame}.exr").write_bytes(frame.to_bytes(4, "big") + block[4:])


SETS = {"A": make_a, "B": make_b, "C": make_c, "S3": make_b}


def tree_stats(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def change_one_percent(root: Path) -> int:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    picked = files[::100]
    for path in picked:
        path.write_bytes(os.urandom(path.stat().st_size))
    return len(picked)


# --------------------------------------------------------------------------- references


def time_cp(src: Path, dst: Path, *, sync: bool) -> float:
    """`cp -r` into a new folder; the copy is left for `bench_set` to delete at the end."""
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    if sync:
        os.sync()
    took = time.perf_counter() - start
    os.sync()
    return took


def time_blake3(src: Path) -> float:
    import blake3

    buf = bytearray(4 * MiB)
    view = memoryview(buf)
    start = time.perf_counter()
    for path in sorted(src.rglob("*")):
        if path.is_file():
            hasher = blake3.blake3()
            with path.open("rb", buffering=0) as f:
                while n := f.readinto(buf):
                    hasher.update(view[:n])
            hasher.hexdigest()
    return time.perf_counter() - start


def time_s3_put(src: Path, s3, prefix: str) -> float:
    """boto3's managed upload of every file (multipart, threads): what the endpoint can take."""
    import boto3

    client = boto3.client("s3", **s3.client_kwargs())
    keys = [(path, f"{prefix}/{path.relative_to(src)}") for path in sorted(src.rglob("*")) if path.is_file()]
    start = time.perf_counter()
    for path, key in keys:
        client.upload_file(str(path), s3.bucket, key)
    took = time.perf_counter() - start
    # moto keeps every object: leave it holding only what the ingest stores.
    client.delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": key} for _, key in keys]})
    return took


# --------------------------------------------------------------------------- environment


def prepare_home(home: Path, hot_root: str, store_env: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh embedded-default home with the BENCH project and its shots, and its tier roots
    (they must exist: `initialise` checks them, with `store_env` for an S3 one)."""
    env = {
        "BIFROST_HOME": str(home),
        "BIFROST_HOT_ROOT": hot_root,
        "BIFROST_ARCHIVE_ROOT": str(home / "archive"),
        "BIFROST_USER": OPERATOR,
    }
    (home / "archive").mkdir(parents=True, exist_ok=True)
    if "://" not in hot_root:
        Path(hot_root).mkdir(parents=True, exist_ok=True)
    code = f"""
import os
os.environ.update({env!r})
from bifrost_core.bootstrap import initialise
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
database = initialise(load_settings()).database
with UnitOfWork(database) as uow:
    project = service.create_project(uow.session, actor=SYSTEM,
                                     data=ProjectCreate(code="{PROJECT}", name="Bench"))
    for s in range(1, 6):
        seq = service.create_sequence(uow.session, actor=SYSTEM, project_id=project.id,
                                      data=SequenceCreate(code=f"sq{{s:03d}}"))
        for n in range(50):
            service.create_shot(uow.session, actor=SYSTEM, sequence_id=seq.id,
                                data=ShotCreate(code=f"sh{{n:04d}}"))
    uow.commit()
"""
    child_env = {**os.environ, **(store_env or {}), **env}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=child_env)
    return env


# --------------------------------------------------------------------------- child


def child(source: str) -> None:
    """Run the ingest flow once and print its figures as JSON (runs in its own process)."""
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.ingest import ingest

    start = time.perf_counter()
    state = ingest(actor=OPERATOR, project=PROJECT, source=source, return_state=True)
    call = time.perf_counter() - start
    summary = state.result()

    async def recorded() -> float:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            return (run.end_time - run.start_time).total_seconds()

    print(
        json.dumps(
            {
                "flow_s": asyncio.run(recorded()),
                "call_s": call,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "created": len(summary.created),
                "copied": summary.files_copied,
                "problems": [p.message for p in summary.problems[:3]],
            }
        )
    )


def run_child(source: Path, env: dict[str, str]) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(source)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - start
    return figures


# --------------------------------------------------------------------------- main


def bench_set(name: str, work: Path, api: str, repeat: int, s3=None) -> dict:
    src = work / f"src-{name}"
    if not src.exists():
        SETS[name](src)
    files, size = tree_stats(src)
    mb = size / 1e6
    rows = []
    # Nothing is deleted until the set is done, so no deletion's disk work (ext4 here is
    # mounted with `discard`) runs during a measurement.
    leftovers: list[Path] = []
    for rep in range(repeat):
        home = work / f"home-{name}-{rep}"
        shutil.rmtree(home, ignore_errors=True)
        leftovers += [home, work / f"cp-{name}-{rep}", work / f"cp-sync-{name}-{rep}"]
        hot = s3.url(f"bench-{name}-{rep}-{os.getpid()}") if s3 is not None else str(home / "hot")
        env = {
            **prepare_home(home, hot, s3.env() if s3 is not None else None),
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(work / "prefect-client"),
        }
        if s3 is not None:
            env.update(s3.env())
        os.sync()
        row = {
            "cp_s": time_cp(src, leftovers[-2], sync=False),
            "cp_sync_s": time_cp(src, leftovers[-1], sync=True),
            "b3_s": time_blake3(src),
        }
        if s3 is not None:
            row["s3_put_s"] = time_s3_put(src, s3, f"raw-{rep}-{os.getpid()}")
        first = run_child(src, env)
        rerun = run_child(src, env)
        row.update(
            flow_s=first["flow_s"],
            wall_s=first["wall_s"],
            rss_mb=max(first["rss_mb"], rerun["rss_mb"]),
            created=first["created"],
            rerun_flow_s=rerun["flow_s"],
            rerun_created=rerun["created"],
            problems=first["problems"],
        )
        if name == "A":
            # Changing the source in place is fine: each repetition starts from a fresh database.
            changed = change_one_percent(src)
            one = run_child(src, env)
            row.update(changed_files=changed, rerun1_flow_s=one["flow_s"], rerun1_created=one["created"])
            row["rss_mb"] = max(row["rss_mb"], one["rss_mb"])
        rows.append(row)
        print(
            f"  {name} run {rep + 1}: "
            + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
            flush=True,
        )
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()

    def med(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    result = {
        "set": name,
        "files": files,
        "MB": round(mb, 1),
        "flow_files_per_s": round(files / med("flow_s")),
        "flow_MB_per_s": round(mb / med("flow_s"), 1),
        "process_wall_s": round(med("wall_s"), 2),
        "flow_s": round(med("flow_s"), 2),
        "cp_MB_per_s": round(mb / med("cp_s"), 1),
        "cp_sync_MB_per_s": round(mb / med("cp_sync_s"), 1),
        "blake3_MB_per_s": round(mb / med("b3_s"), 1),
        "ratio_vs_cp": round((mb / med("flow_s")) / (mb / med("cp_s")), 2),
        "ratio_vs_cp_sync": round((mb / med("flow_s")) / (mb / med("cp_sync_s")), 2),
        "peak_rss_MB": round(max(row["rss_mb"] for row in rows), 1),
        "rerun_unchanged_flow_s": round(med("rerun_flow_s"), 3),
    }
    if s3 is not None:
        result["raw_s3_put_MB_per_s"] = round(mb / med("s3_put_s"), 1)
    if name == "A":
        result["rerun_1pct_flow_s"] = round(med("rerun1_flow_s"), 3)
    return result


def startup_cost(work: Path, api: str) -> dict[str, float]:
    """Wall time of `bifrost ingest` of a one-file delivery on the embedded default (the first
    run in a home creates the Prefect database; later ones find it) and with a server."""
    home = work / "home-startup"
    shutil.rmtree(home, ignore_errors=True)
    env = prepare_home(home, str(home / "hot"))
    tiny = work / "src-tiny" / "sq001" / "sh0000" / "plate"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "plate.1001.exr").write_bytes(b"one frame")
    out = {}
    bifrost = str(Path(sys.executable).parent / "bifrost")
    runs = (("embedded_first_s", {}), ("embedded_s", {}), ("with_server_s", {"PREFECT_API_URL": api}))
    for label, extra in runs:
        run_env = {**os.environ, **env, **extra}
        if not extra:
            run_env.pop("PREFECT_API_URL", None)
            run_env.pop("PREFECT_HOME", None)
        (tiny / "plate.1001.exr").write_bytes(f"one frame {label}".encode())
        start = time.perf_counter()
        subprocess.run(
            [bifrost, "ingest", str(work / "src-tiny"), "--project", PROJECT, "--json"],
            check=True,
            env=run_env,
            capture_output=True,
        )
        out[label] = round(time.perf_counter() - start, 2)
    return out


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall time of a whole command as typed (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, cwd=ROOT)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} failed:\n{done.stderr.decode()[-3000:]}")
    return took


def server_figures(work: Path, repeat: int) -> dict[str, float]:
    """Whole `bifrost` commands with the home's persistent server up (`bifrost server start`,
    its warm runner serving flow commands): a one-file ingest, set A, set A on the embedded
    default after its first command (the server started by that command), `bifrost --help`.
    Each set A ingest gets a fresh database and tier (BIFROST_DATABASE_URL, BIFROST_HOT_ROOT:
    the same home, so the same server)."""
    from deployments.local_server import free_port

    bifrost = str(Path(sys.executable).parent / "bifrost")
    src = work / "src-A"
    if not src.exists():
        make_a(src)
    tiny = work / "src-tiny" / "sq001" / "sh0000" / "plate"
    tiny.mkdir(parents=True, exist_ok=True)
    out: dict[str, float] = {}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "PREFECT_"))}
    for label, started_by in (("server_up", "start"), ("embedded_after_first", "first command")):
        home = work / f"home-server-{label}"
        shutil.rmtree(home, ignore_errors=True)
        env = {
            **base,
            **prepare_home(home, str(home / "hot")),
            "BIFROST_PREFECT_PORT": str(free_port()),
            "BIFROST_PREFECT_SERVER": "auto",
        }
        try:
            if started_by == "start":
                out["server_start_s"] = round(timed([bifrost, "server", "start"], env), 2)
            one_file = [bifrost, "ingest", str(work / "src-tiny"), "--project", PROJECT, "--json"]
            times = []
            for rep in range(repeat + 1):
                (tiny / "plate.1001.exr").write_bytes(f"one frame {label} {rep}".encode())
                times.append(timed(one_file, env))
            if started_by == "first command":
                out["first_command_starting_the_server_s"] = round(times[0], 2)
            out[f"one_file_{label}_s"] = round(statistics.median(times[1:]), 2)
            runs = []
            for rep in range(repeat):
                database = {"BIFROST_DATABASE_URL": f"sqlite:///{home / f'bench-{rep}.db'}"}
                fresh = {**env, **database, "BIFROST_HOT_ROOT": str(home / f"hot-{rep}")}
                prepare_home(home, fresh["BIFROST_HOT_ROOT"], database)
                os.sync()
                runs.append(timed([bifrost, "ingest", str(src), "--project", PROJECT, "--json"], fresh))
            out[f"set_A_{label}_s"] = round(statistics.median(runs), 2)
        finally:
            subprocess.run([bifrost, "server", "stop"], env=env, capture_output=True)
    helps = [timed([bifrost, "--help"], base) for _ in range(repeat + 1)]
    out["help_s"] = round(statistics.median(helps[1:]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sets", default="A,B,C,S3,SERVER")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "prefect-server").mkdir(exist_ok=True)
    print(f"work folder: {work}", flush=True)
    results = []
    if "SERVER" in args.sets.split(","):
        figures = server_figures(work, args.repeat)
        print("whole commands with `bifrost server` (medians):", json.dumps(figures), flush=True)
        for line in server_targets(figures):
            print(line)
    sets = [name for name in args.sets.split(",") if name != "SERVER"]
    if not sets:
        shutil.rmtree(work, ignore_errors=True)
        return
    with local_prefect_server(work / "prefect-server") as api:
        print("start-up of `bifrost ingest` (one file):", startup_cost(work, api), flush=True)
        for name in sets:
            if name == "S3":
                from tests.support.s3 import running_s3

                with running_s3() as s3:
                    results.append(bench_set(name, work, api, args.repeat, s3))
            else:
                results.append(bench_set(name, work, api, args.repeat))
            print(json.dumps(results[-1]), flush=True)
    print("\nmedians of", args.repeat)
    for result in results:
        print(json.dumps(result))
    print()
    for line in against_targets(results):
        print(line)
    shutil.rmtree(work, ignore_errors=True)


def server_targets(figures: dict[str, float]) -> list[str]:
    """Issue #12's targets for whole commands next to the medians measured."""
    up = figures["set_A_server_up_s"]
    rows = [
        ("one-file ingest, server up", figures["one_file_server_up_s"], "<= 1.5 s", 1.5),
        ("set A ingest, server up", up, "<= 3.5 s", 3.5),
        ("set A, embedded default after its first command", figures["set_A_embedded_after_first_s"],
         f"<= {up + 1:.2f} s (server up + 1 s)", up + 1),
        ("bifrost --help", figures["help_s"], "<= 0.3 s", 0.3),
    ]  # fmt: skip
    width = max(len(row[0]) for row in rows)
    return [
        f"{label:<{width}}  {measured:<8} s  target {target:<28} {'met' if measured <= bound else 'MISSED'}"
        for label, measured, target, bound in rows
    ]


def against_targets(results: list[dict]) -> list[str]:
    """The issue's targets next to the medians measured (peak RSS: the highest of any run)."""
    by_set = {result["set"]: result for result in results}
    rows = []
    if "A" in by_set:
        a = by_set["A"]
        rows += [
            (
                "A: 10,000 small files",
                f"{a['flow_files_per_s']} files/s",
                ">= 2500",
                a["flow_files_per_s"] >= 2500,
            ),
            (
                "rerun, nothing changed",
                f"{a['rerun_unchanged_flow_s']} s",
                "<= 0.5 s",
                a["rerun_unchanged_flow_s"] <= 0.5,
            ),
        ]
    for name, label in (("B", "B: large files"), ("C", "C: 1,000-frame sequence")):
        if name in by_set:
            r = by_set[name]
            rows.append(
                (
                    label,
                    f"{r['ratio_vs_cp']} x cp -r ({r['ratio_vs_cp_sync']} x cp -r + sync)",
                    ">= 0.7 x cp -r",
                    r["ratio_vs_cp"] >= 0.7,
                )
            )
    if "S3" in by_set:
        r = by_set["S3"]
        rows.append(
            (
                "large files to S3 (moto)",
                f"{r['flow_MB_per_s']} MB/s (boto3 alone {r['raw_s3_put_MB_per_s']})",
                ">= 200 MB/s",
                r["flow_MB_per_s"] >= 200,
            )
        )
    rss = max(result["peak_rss_MB"] for result in results)
    rows.append(("peak RSS, any set", f"{rss} MB", "<= 300 MB", rss <= 300))
    width = max(len(row[0]) for row in rows)
    return [
        f"{label:<{width}}  {measured:<48} target {target:<16} {'met' if met else 'MISSED'}"
        for label, measured, target, met in rows
    ]


if __name__ == "__main__":
    main()
