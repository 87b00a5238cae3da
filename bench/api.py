"""HTTP API benchmark: `bifrost serve --workers 2` on PostgreSQL, measured from outside.

    .venv/bin/python bench/api.py [--pg postgresql://postgres@127.0.0.1:5432] [--redis URL]
                                  [--requests 200] [--keep]

Builds a throwaway PostgreSQL database with 1 project, 20 sequences x 250 shots and
1,000 assets, starts the server, warms it up, then times each operation at
concurrency 1 and 8 (>= --requests requests each) and prints p50/p95/p99 and req/s.
The client is http.client over keep-alive connections (one per thread), so the
figures are the server's, not an HTTP library's. Targets (concurrency 1, 2 cores):
create p50 <= 4 ms, get <= 3 ms, one page of 250 <= 8 ms, all 5,000 <= 120 ms, update <= 4 ms.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

SEQUENCES, SHOTS_PER_SEQUENCE, ASSETS = 20, 250, 1000
TARGETS = {
    "create shot": 4,
    "get shot": 3,
    "list 250 (one page)": 8,
    "list 5,000 (all pages)": 120,
    "update shot": 4,
}


def make_database(server: str) -> tuple[str, str]:
    name = f"bifrost_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{server.split('://', 1)[1]}/{name}"


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, home: Path) -> tuple[str, int, list[int], list[int]]:
    """The production, through the services (the API is what is measured, not the set-up)."""
    from bifrost_core.assets import service as assets
    from bifrost_core.assets.schemas import AssetCreate
    from bifrost_core.bootstrap import initialise
    from bifrost_core.config import load_settings
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.projects import service as projects
    from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
    from bifrost_core.scope import SYSTEM

    result = initialise(load_settings(home=home, database_url=url))
    with UnitOfWork(result.database) as uow:
        session = uow.session
        project = projects.create_project(
            session, actor=SYSTEM, data=ProjectCreate(code="BENCH", name="Bench")
        )
        sequence_ids, shot_ids = [], []
        for s in range(SEQUENCES):
            sequence = projects.create_sequence(
                session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code=f"sq{s:03}")
            )
            sequence_ids.append(sequence.id)
            for n in range(SHOTS_PER_SEQUENCE):
                shot = projects.create_shot(
                    session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code=f"sh{n:04}")
                )
                shot_ids.append(shot.id)
        for a in range(ASSETS):
            assets.create_asset(
                session,
                actor=SYSTEM,
                project_id=project.id,
                data=AssetCreate(code=f"asset{a:04}", asset_type="prop"),
            )
        uow.commit()
    result.database.dispose()
    return result.admin_token.token, project.id, sequence_ids, shot_ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive connection; answers are decoded (gzip when the server chose it)."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}

    def call(self, method: str, path: str, body: object = None) -> object:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=payload, headers=headers)
        answer = self.connection.getresponse()
        data = answer.read()
        if answer.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        if answer.status >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status} {data[:200]!r}")
        return json.loads(data) if data else None


def run(
    port: int, token: str, operation: Callable[[Client, int], None], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies in ms of `requests` calls spread over `concurrency` threads, and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        client = Client(port, token)
        mine = []
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            started = time.perf_counter()
            operation(client, index)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the server's worker processes (Linux /proc): a figure that, unlike
    latency, does not grow when other programs share the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("BIFROST_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="'' for the in-process cache")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="serve with synchronous_commit=off: shows the cost of the WAL flush each write waits for",
    )
    args = parser.parse_args()

    name, url = make_database(args.pg)
    home = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    server = None
    try:
        print(
            f"seeding {SEQUENCES} sequences x {SHOTS_PER_SEQUENCE} shots and {ASSETS} assets ...", flush=True
        )
        token, project_id, sequence_ids, shot_ids = seed(url, home)
        if args.redis:
            import redis

            redis.Redis.from_url(args.redis).flushdb()
        port = free_port()
        env = {
            **os.environ,
            "BIFROST_HOME": str(home),
            "BIFROST_DATABASE_URL": url
            + ("?options=-csynchronous_commit%3Doff" if args.async_commit else ""),
            "BIFROST_REDIS_URL": args.redis,
            "BIFROST_API_RATE_LIMIT": "0",
            "BIFROST_DB_POOL_SIZE": "10",
        }
        log = (home / "serve.log").open("w")
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "bifrost"),
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                Client(port, token).call("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start:\n{(home / 'serve.log').read_text()}") from None
                time.sleep(0.2)

        created = iter(range(10**9))
        rng = random.Random(7)

        def create(client: Client, _i: int) -> None:
            sequence_id = rng.choice(sequence_ids)
            client.call("POST", f"/sequences/{sequence_id}/shots", {"code": f"b{next(created):07}"})

        def get(client: Client, _i: int) -> None:
            client.call("GET", f"/shots/{rng.choice(shot_ids)}")

        def page(client: Client, _i: int) -> None:
            answer = client.call(
                "GET", f"/projects/{project_id}/shots?sequence_id={rng.choice(sequence_ids)}&limit=250"
            )
            assert len(answer["items"]) >= SHOTS_PER_SEQUENCE

        def walk(client: Client, _i: int) -> None:
            after, total = 0, 0
            while after is not None:
                answer = client.call("GET", f"/projects/{project_id}/shots?limit=1000&after={after}")
                total += len(answer["items"])
                after = answer["next_cursor"]
            assert total >= SEQUENCES * SHOTS_PER_SEQUENCE

        def update(client: Client, i: int) -> None:
            client.call("PATCH", f"/shots/{rng.choice(shot_ids)}", {"description": f"take {i}"})

        operations = {
            "create shot": create,
            "get shot": get,
            "list 250 (one page)": page,
            "list 5,000 (all pages)": walk,
            "update shot": update,
        }
        commit = "synchronous_commit=off" if args.async_commit else "durable commits"
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {commit}", flush=True)
        print(
            f"warming up ({args.workers} workers, cache: {'redis' if args.redis else 'in-process'}) ...",
            flush=True,
        )
        for operation in operations.values():
            run(port, token, operation, 40, 2)

        print(
            f"\n{'operation':<24} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}"
            f" {'cpu ms':>7}  target p50"
        )
        for label, operation in operations.items():
            for concurrency in (1, 8):
                cpu_before = server_cpu_seconds(server.pid)
                latencies, wall = run(port, token, operation, args.requests, concurrency)
                cpu_ms = (server_cpu_seconds(server.pid) - cpu_before) * 1000 / len(latencies)
                target = f"<= {TARGETS[label]} ms" if concurrency == 1 else ""
                verdict = ""
                if concurrency == 1:
                    verdict = "ok" if statistics.median(latencies) <= TARGETS[label] else "MISSED"
                print(
                    f"{label:<24} {concurrency:>4} {len(latencies):>5} {percentile(latencies, 50):>8.2f} "
                    f"{percentile(latencies, 95):>8.2f} {percentile(latencies, 99):>8.2f} "
                    f"{len(latencies) / wall:>8.0f} {cpu_ms:>7.2f}  {target} {verdict}",
                    flush=True,
                )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}; cpu ms: server worker CPU per request")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            drop_database(args.pg, name)


if __name__ == "__main__":
    main()
