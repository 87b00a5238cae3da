"""HTTP API benchmark: `bifrost serve --workers 2` on PostgreSQL, measured from outside.

    .venv/bin/python bench/api.py [--pg postgresql://postgres@127.0.0.1:5432] [--redis URL]
                                  [--requests 200] [--rounds 25] [--sections ...] [--keep]

Builds a throwaway PostgreSQL database with 1 project, 20 sequences x 250 shots and
1,000 assets, starts the server, warms it up, then times each operation at
concurrency 1 and 8 (>= --requests requests each) and prints p50/p95/p99 and req/s.
The client is http.client over keep-alive connections (one per thread), so the
figures are the server's, not an HTTP library's. Targets (concurrency 1, 2 cores):
create p50 <= 4 ms, get <= 3 ms, one page of 250 <= 8 ms, all 5,000 <= 120 ms, update <= 4 ms.

Three more sections (`--sections`, all four by default):
- gateway: `bifrost gateway` (HAProxy, TLS) in front of one API process: p50 of a get and of a
  list page through it against the same process directly (target: <= 1 ms added), over --rounds
  rounds of 20 requests on each path in turns, each path on one keep-alive connection (one TLS
  handshake), as a real client; added: the median of the rounds' differences and its spread
  (25th-75th percentile), so that the noise of a shared machine is shown, not hidden; then at
  concurrency 16, throughput and CPU per request (every process: APIs and HAProxy) of one
  process directly, one behind the gateway and three behind it. The client shares the machine's
  cores with them, so on 2 cores three processes cannot go near three times as fast.
- telemetry: the cost of metrics and tracing. `bifrost serve` with both off
  (BIFROST_METRICS_ENABLED=false, OTEL_SDK_DISABLED=true), with metrics alone, with both on
  (metrics, and traces exported by OTLP over HTTP in batches to a local receiver that accepts
  them, as a collector next to the API would), and with both on but one trace in ten sampled
  (OTEL_TRACES_SAMPLER=parentbased_traceidratio): p50 of get and create (target: <= 5% added by
  both), and CPU per request. The four servers run side by side and take turns, --rounds rounds
  of 20 requests each, so that a change of the machine's load hits them alike; added: the median
  of the rounds' p50 ratios, with its spread.
  No Prefect server runs here: the API's Prefect reader (api/run_metrics.py) sits idle.
- runs: the flow-run routes, which call the Prefect server: a Prefect server of its own with
  Bifrost's deployments registered (no worker: the runs stay scheduled), then p50 of starting
  a render-queue run (POST /projects/{id}/flows/render-queue/runs) and of reading one
  (GET /flow-runs/{id}: the run and its summary artifact, two Prefect calls), with the API
  server's CPU per request; the Prefect server's own time is in the latency, not in the CPU.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg

SEQUENCES, SHOTS_PER_SEQUENCE, ASSETS = 20, 250, 1000
SECTIONS = ("operations", "gateway", "telemetry", "runs")
BIFROST = str(Path(sys.executable).parent / "bifrost")
GATEWAY_ADDED_MS = 1
TELEMETRY_ADDED_PERCENT = 5
ROUNDS = 25  # the gateway and telemetry sections: rounds of BLOCK requests on each path, in turns
BLOCK = 20
BATCH_SECONDS = 5.5  # the span processor's export interval (OTEL_BSP_SCHEDULE_DELAY: 5 s)
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
    """One keep-alive connection (HTTPS when given a TLS context); answers are decoded (gzip
    when the server chose it)."""

    def __init__(self, port: int, token: str, tls: ssl.SSLContext | None = None) -> None:
        if tls is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        else:
            self.connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=tls)
        self.headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}

    def call(self, method: str, path: str, body: object = None) -> object:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the kept-alive connection while it was idle (uvicorn: after 5 s),
            # before reading this request: a browser sends it again on a new one, and so does this.
            self.connection.close()
            self.connection.request(method, path, body=payload, headers=headers)
            answer = self.connection.getresponse()
        data = answer.read()
        if answer.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        if answer.status >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status} {data[:200]!r}")
        return json.loads(data) if data else None


Connect = Callable[[], Client]
Operation = Callable[[Client, int], None]


def run(
    connect: Connect, operation: Callable[[Client, int], None], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies in ms of `requests` calls spread over `concurrency` threads (a connection each),
    and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        client = connect()
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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc): a figure that,
    unlike latency, does not grow when other programs share the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def operations_of(project_id: int, sequence_ids: list[int], shot_ids: list[int]) -> dict[str, Operation]:
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

    return {
        "create shot": create,
        "get shot": get,
        "list 250 (one page)": page,
        "list 5,000 (all pages)": walk,
        "update shot": update,
    }


def wait_until_up(process: subprocess.Popen, log: Path, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            check()
            return
        except (OSError, AttributeError):  # refused, or nothing in the log yet
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{log.name}: did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


def stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def served(
    env: dict[str, str], home: Path, workers: int, label: str
) -> Iterator[tuple[subprocess.Popen, int]]:
    """`bifrost serve` on a free port until the block ends."""
    port = free_port()
    log = home / f"serve-{label}.log"
    server = subprocess.Popen(
        [BIFROST, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(server, log, lambda: Client(port, "").call("GET", "/healthz"))
        yield server, port
    finally:
        stopped(server)


@contextmanager
def gateway(
    env: dict[str, str], home: Path, processes: int
) -> Iterator[tuple[subprocess.Popen, int, list[int], ssl.SSLContext]]:
    """`bifrost gateway` with `processes` API processes: (its process, its HTTPS port, the API
    processes' own ports, a TLS context that trusts its certificate)."""
    port = free_port()
    log = home / f"gateway-{processes}.log"
    process = subprocess.Popen(
        [BIFROST, "gateway", "--processes", str(processes), "--port", str(port), "--rate-limit", str(10**9)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    ports: list[int] = []

    def started() -> None:
        found = re.search(r"API processes \(ports ([\d, ]+)\)", log.read_text())
        ports.extend(int(number) for number in found.group(1).split(", "))  # type: ignore[union-attr]

    try:
        wait_until_up(process, log, started)
        tls = ssl.create_default_context(cafile=str(home / "gateway" / "gateway.pem"))
        yield process, port, ports, tls
    finally:
        stopped(process)  # it stops its API processes and HAProxy


@contextmanager
def otlp_receiver() -> Iterator[tuple[int, dict[str, int]]]:
    """An OTLP/HTTP endpoint that accepts every export (as a collector would) and counts them."""
    received = {"exports": 0, "bytes": 0}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            received["bytes"] += len(self.rfile.read(size))
            received["exports"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def interleaved(
    clients: dict[str, Client], operation: Operation, rounds: int, block: int = BLOCK
) -> dict[str, list[list[float]]]:
    """Latencies in ms, per client and round: in each round every client makes `block` calls in
    turn (who goes first rotating), so that a change of the machine's load hits them alike. Each
    client keeps its one connection throughout, as a real client would."""
    latencies: dict[str, list[list[float]]] = {label: [] for label in clients}
    labels = list(clients)
    for number in range(rounds):
        shift = number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            values = []
            for index in range(block):
                started = time.perf_counter()
                operation(clients[label], index)
                values.append((time.perf_counter() - started) * 1000)
            latencies[label].append(values)
    return latencies


def pooled(rounds: list[list[float]]) -> float:
    return percentile([value for values in rounds for value in values], 50)


def paired(
    latencies: dict[str, list[list[float]]],
    label: str,
    reference: str,
    difference: Callable[[float, float], float],
) -> tuple[float, float, float]:
    """The median, 25th and 75th percentiles over the rounds of `difference`(this round's p50 of
    `label`, of `reference`): what one path adds, and how much that moved from round to round."""
    values = [
        difference(statistics.median(mine), statistics.median(theirs))
        for mine, theirs in zip(latencies[label], latencies[reference], strict=True)
    ]
    return percentile(values, 50), percentile(values, 25), percentile(values, 75)


def bench_operations(
    args: argparse.Namespace, env: dict[str, str], home: Path, token: str, operations: dict[str, Operation]
) -> None:
    print(
        f"\n== operations: `bifrost serve --workers {args.workers}`, cache: "
        f"{'redis' if args.redis else 'in-process'}",
        flush=True,
    )
    with served(env, home, args.workers, "operations") as (server, port):
        connect = lambda: Client(port, token)  # noqa: E731
        for operation in operations.values():
            run(connect, operation, 40, 2)
        print(
            f"{'operation':<24} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}"
            f" {'cpu ms':>7}  target p50"
        )
        for label, operation in operations.items():
            for concurrency in (1, 8):
                cpu_before = tree_cpu_seconds(server.pid)
                latencies, wall = run(connect, operation, args.requests, concurrency)
                cpu_ms = (tree_cpu_seconds(server.pid) - cpu_before) * 1000 / len(latencies)
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
    print("cpu ms: the server's CPU (all its processes) per request")


def bench_gateway(
    args: argparse.Namespace, env: dict[str, str], home: Path, token: str, operations: dict[str, Operation]
) -> None:
    print(
        "\n== gateway: `bifrost gateway` (HAProxy, TLS, keep-alive) against its API process directly",
        flush=True,
    )
    reads = {label: operations[label] for label in ("get shot", "list 250 (one page)")}
    with gateway(env, home, 1) as (process, port, (api_port,), tls):
        direct = lambda: Client(api_port, token)  # noqa: E731
        through = lambda: Client(port, token, tls)  # noqa: E731
        # One connection each for the whole section (keep-alive; one TLS handshake), as a client would.
        clients = {"direct": direct(), "gateway": through()}
        for operation in reads.values():
            for client in clients.values():
                for index in range(40):
                    operation(client, index)
        print(
            f"{args.rounds} rounds of {BLOCK} requests on each path, in turns; added: the median over the "
            "rounds of (gateway p50 - direct p50), [25th-75th percentile]"
        )
        print(
            f"{'operation (conc 1)':<24} {'direct p50':>10} {'gateway p50':>11} {'added ms':>9} "
            f"{'spread':>14}  target"
        )
        for label, operation in reads.items():
            latencies = interleaved(clients, operation, args.rounds)
            added, low, high = paired(latencies, "gateway", "direct", lambda mine, theirs: mine - theirs)
            verdict = "ok" if added <= GATEWAY_ADDED_MS else "MISSED"
            print(
                f"{label:<24} {pooled(latencies['direct']):>10.2f} {pooled(latencies['gateway']):>11.2f} "
                f"{added:>9.2f} {f'[{low:.2f}, {high:.2f}]':>14}  <= {GATEWAY_ADDED_MS} ms {verdict}",
                flush=True,
            )
        columns = f"{'n':>5} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'cpu ms':>7}"
        print(f"\n{'get shot, concurrency 16':<34} {columns}")
        rows = [("1 process, directly", direct, process), ("1 process behind the gateway", through, process)]
        for label, connect, tree in rows:
            throughput_row(label, connect, tree, operations["get shot"], args.requests * 5)
    with gateway(env, home, 3) as (process, port, _ports, tls):
        through = lambda: Client(port, token, tls)  # noqa: E731
        run(through, operations["get shot"], 200, 16)
        throughput_row(
            "3 processes behind the gateway", through, process, operations["get shot"], args.requests * 5
        )
    print(
        f"cpu ms: CPU per request of every process of the gateway (API processes, HAProxy); the client "
        f"runs on the same {os.cpu_count()} cores"
    )


def throughput_row(
    label: str, connect: Connect, tree: subprocess.Popen, operation: Operation, requests: int
) -> None:
    cpu_before = tree_cpu_seconds(tree.pid)
    latencies, wall = run(connect, operation, requests, 16)
    cpu_ms = (tree_cpu_seconds(tree.pid) - cpu_before) * 1000 / len(latencies)
    print(
        f"{label:<34} {len(latencies):>5} {len(latencies) / wall:>7.0f} {percentile(latencies, 50):>7.2f} "
        f"{percentile(latencies, 95):>7.2f} {cpu_ms:>7.2f}",
        flush=True,
    )


def bench_telemetry(
    args: argparse.Namespace, env: dict[str, str], home: Path, token: str, operations: dict[str, Operation]
) -> None:
    print(
        f"\n== telemetry: `bifrost serve --workers {args.workers}` with metrics and tracing off, metrics "
        "alone, both on, both on with 1 trace in 10 sampled (traces: OTLP over HTTP, batched, to a local "
        "receiver); the four servers run side by side and take turns",
        flush=True,
    )
    quiet = {key: value for key, value in env.items() if not key.startswith("OTEL_")}
    measured = {"get shot": operations["get shot"], "create shot": operations["create shot"]}
    with otlp_receiver() as (receiver_port, received), ExitStack() as stack:
        untraced = {**quiet, "OTEL_SDK_DISABLED": "true"}
        traced = {
            **quiet,
            "BIFROST_METRICS_ENABLED": "true",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{receiver_port}/v1/traces",
            "OTEL_SERVICE_NAME": "bifrost-bench",
        }
        configurations = {
            "off": {**untraced, "BIFROST_METRICS_ENABLED": "false"},
            "metrics": {**untraced, "BIFROST_METRICS_ENABLED": "true"},
            "both": traced,
            # What a busy studio would run: the SDK's standard sampler, one trace in ten kept
            # (a request carrying a sampled parent's context is kept whatever the ratio).
            "sampled": {
                **traced,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        }
        servers, ports = {}, {}
        for state, configuration in configurations.items():
            servers[state], ports[state] = stack.enter_context(
                served(configuration, home, args.workers, f"telemetry-{state}")
            )
            check_metrics_route(ports[state], served=state != "off")
        results = {}
        for label, operation in measured.items():
            for port in ports.values():
                run(lambda port=port: Client(port, token), operation, 40, 2)
            time.sleep(BATCH_SECONDS)  # the warm-up's spans are exported before the CPU is read
            # Connections opened now: an idle one is closed by the server after 5 s.
            clients = {state: Client(port, token) for state, port in ports.items()}
            cpu_before = {state: tree_cpu_seconds(server.pid) for state, server in servers.items()}
            latencies = interleaved(clients, operation, args.rounds)
            time.sleep(BATCH_SECONDS)  # and the last batch of these requests' spans
            cpu = {
                state: (tree_cpu_seconds(server.pid) - cpu_before[state]) * 1000 / (args.rounds * BLOCK)
                for state, server in servers.items()
            }
            results[label] = (latencies, cpu)
        exports, exported = received["exports"], received["bytes"]
    print(
        f"{args.rounds} rounds of {BLOCK} requests on each server, in turns. p50: over all rounds; "
        "added: the median over the rounds of (p50 / off's p50 - 1), [25th-75th percentile]; cpu: ms of "
        "server CPU per request (all its processes, span export included). Target: <= "
        f"{TELEMETRY_ADDED_PERCENT}% added with both on"
    )
    print(f"{'operation (conc 1)':<20} {'':>6}" + "".join(f" {state:>15}" for state in configurations))
    for label, (latencies, cpu) in results.items():
        added = {
            state: paired(latencies, state, "off", lambda mine, theirs: (mine / theirs - 1) * 100)
            for state in configurations
        }
        print(
            f"{label:<20} {'p50':>6}"
            + "".join(f" {pooled(latencies[state]):>15.2f}" for state in configurations)
        )
        print(f"{'':<20} {'added':>6}" + "".join(f" {added[state][0]:>14.1f}%" for state in configurations))
        print(
            f"{'':<20} {'spread':>6}"
            + "".join(f" {f'[{added[state][1]:.1f}, {added[state][2]:.1f}]':>15}" for state in configurations)
        )
        print(
            f"{'':<20} {'cpu':>6}" + "".join(f" {cpu[state]:>15.2f}" for state in configurations), flush=True
        )
        verdict = "ok" if added["both"][0] <= TELEMETRY_ADDED_PERCENT else "MISSED"
        print(
            f"{'':<20} both on: {added['both'][0]:.1f}% added (p50 {pooled(latencies['both']):.2f} ms "
            f"against {pooled(latencies['off']):.2f}), target <= {TELEMETRY_ADDED_PERCENT}%: {verdict}"
        )
    print(
        f"spans exported while traced: {exports} OTLP requests, {exported / 1024:.0f} KiB; /metrics checked: "
        "200 with metrics on, 404 off. off: metrics and tracing off; metrics: metrics alone; both: "
        "metrics and every request traced; sampled: metrics and 1 trace in 10 kept"
    )


def bench_runs(
    args: argparse.Namespace, env: dict[str, str], home: Path, token: str, operations: dict[str, Operation]
) -> None:
    from deployments.local_server import local_prefect_server

    print(f"\n== runs: `bifrost serve --workers {args.workers}` and a Prefect server of its own", flush=True)
    with local_prefect_server(home / "prefect") as prefect_url:
        registered = subprocess.run(
            [sys.executable, "-m", "deployments.flows"],
            env={**env, "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": prefect_url},
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
        )
        if registered.returncode != 0:
            raise SystemExit(f"deployments not registered:\n{registered.stderr[-2000:]}")
        with served({**env, "PREFECT_API_URL": prefect_url}, home, args.workers, "runs") as (server, port):
            connect = lambda: Client(port, token)  # noqa: E731
            project_id = Client(port, token).call("GET", "/projects")["items"][0]["id"]
            started: list[str] = []

            def start(client: Client, _i: int) -> None:
                answer = client.call("POST", f"/projects/{project_id}/flows/render-queue/runs", {})
                started.append(answer["run_id"])

            def read(client: Client, i: int) -> None:
                client.call("GET", f"/flow-runs/{started[i % len(started)]}")

            run(connect, start, 20, 2)  # warm-up: imports, connections
            run(connect, read, 20, 2)
            print(f"{'operation':<24} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p95 ms':>8}", end="")
            print(f" {'req/s':>8} {'cpu ms':>7}")
            count = max(args.requests // 2, 20)
            for label, operation, concurrency in (
                ("start run", start, 1),
                ("read run", read, 1),
                ("read run", read, 8),
            ):
                cpu_before = tree_cpu_seconds(server.pid)
                latencies, wall = run(connect, operation, count, concurrency)
                cpu_ms = (tree_cpu_seconds(server.pid) - cpu_before) * 1000 / len(latencies)
                print(
                    f"{label:<24} {concurrency:>4} {len(latencies):>5} {percentile(latencies, 50):>8.2f} "
                    f"{percentile(latencies, 95):>8.2f} {len(latencies) / wall:>8.0f} {cpu_ms:>7.2f}",
                    flush=True,
                )
    print("cpu ms: the API server's CPU (all its processes) per request")


def check_metrics_route(port: int, *, served: bool) -> None:
    """The switch did what it says: the figures are of what they claim to be."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    answer = connection.getresponse()
    answer.read()
    connection.close()
    if answer.status != (200 if served else 404):
        raise SystemExit(f"/metrics answered {answer.status} with metrics {'on' if served else 'off'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("BIFROST_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="'' for the in-process cache")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"gateway and telemetry: rounds of {BLOCK} requests per path",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="serve with synchronous_commit=off: shows the cost of the WAL flush each write waits for",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, of: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args()
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if unknown := [name for name in sections if name not in SECTIONS]:
        parser.error(f"unknown section {unknown[0]!r} (sections: {', '.join(SECTIONS)})")

    name, url = make_database(args.pg)
    home = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    try:
        print(
            f"seeding {SEQUENCES} sequences x {SHOTS_PER_SEQUENCE} shots and {ASSETS} assets ...", flush=True
        )
        token, project_id, sequence_ids, shot_ids = seed(url, home)
        if args.redis:
            import redis

            redis.Redis.from_url(args.redis).flushdb()
        env = {
            **os.environ,
            "BIFROST_HOME": str(home),
            "BIFROST_DATABASE_URL": url
            + ("?options=-csynchronous_commit%3Doff" if args.async_commit else ""),
            "BIFROST_REDIS_URL": args.redis,
            "BIFROST_API_RATE_LIMIT": "0",
            "BIFROST_DB_POOL_SIZE": "10",
        }
        operations = operations_of(project_id, sequence_ids, shot_ids)
        commit = "synchronous_commit=off" if args.async_commit else "durable commits"
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {commit}", flush=True)
        benches = {
            "operations": bench_operations,
            "gateway": bench_gateway,
            "telemetry": bench_telemetry,
            "runs": bench_runs,
        }
        for section in sections:
            benches[section](args, env, home, token, operations)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            drop_database(args.pg, name)


if __name__ == "__main__":
    main()
