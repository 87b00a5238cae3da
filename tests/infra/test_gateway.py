"""`bifrost gateway`: HAProxy (Debian's) with TLS in front of three API processes on PostgreSQL.

Checked through the gateway: TLS verifies against the certificate it made, security headers,
/metrics kept off the edge, the edge's body limit; under a steady load one API process is
killed with -9, and no request fails but those it held when it died, and the gateway starts it
again. On a second gateway with a small rate limit, a client over it gets 429 and another
client address does not."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bifrost_core.db.database import Database
from tests.support.services import free_port, service_missing
from tests.support.world import build_world

pytestmark = pytest.mark.slow
BIFROST = str(Path(sys.executable).parent / "bifrost")
CLIENTS = 8


def start_gateway(tmp_path: Path, database_url: str, *options: str) -> tuple[subprocess.Popen, str, Path]:
    if shutil.which("haproxy") is None:
        service_missing("HAProxy (make tools)", "not on PATH")
    port = free_port()
    home = tmp_path / f"home-{port}"
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("BIFROST_") or k.startswith("BIFROST_TEST")
    }
    log = tmp_path / f"gateway-{port}.log"
    process = subprocess.Popen(
        [BIFROST, "gateway", "--port", str(port), *options],
        env={**clean, "BIFROST_HOME": str(home), "BIFROST_DATABASE_URL": database_url},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while "gateway: https://" not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.3)
    return process, f"https://127.0.0.1:{port}", home / "gateway" / "gateway.pem"


def trusting(certificate: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate))


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def api_processes(gateway: subprocess.Popen) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(gateway.pid), "-f", "cli.serve"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


def test_tls_headers_limits_and_a_killed_process(tmp_path, pg_database_url):
    database = Database(pg_database_url)
    world = build_world(database)
    database.dispose()
    gateway, url, certificate = start_gateway(
        tmp_path, pg_database_url, "--processes", "3", "--max-body", "4096", "--rate-limit", "100000"
    )
    try:
        with pytest.raises(httpx.ConnectError):  # self-signed: refused without its certificate
            httpx.get(f"{url}/healthz", timeout=10)
        http = httpx.Client(
            base_url=url, verify=trusting(certificate), timeout=30, headers=world.headers("coordinator")
        )
        answer = http.get("/healthz")
        assert answer.status_code == 200
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "server" not in answer.headers
        hidden = http.get("/metrics")
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
        large = http.post(
            "/projects", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"}
        )
        assert large.status_code == 413 and large.json()["error"]["code"] == "too_large"
        assert "x-request-id" not in large.headers  # the edge answered, the API never saw it

        pids = api_processes(gateway)
        assert len(pids) == 3
        outcomes: Counter[str] = Counter()
        done = threading.Event()
        count = 0
        lock = threading.Lock()

        def client(_: int) -> None:
            nonlocal count
            with httpx.Client(base_url=url, verify=trusting(certificate), timeout=30) as mine:
                for _ in range(150):
                    try:
                        status = mine.get(f"/shots/{world.a.shot_id}", headers=world.headers("coordinator"))
                        outcome = str(status.status_code)
                    except httpx.HTTPError as exc:
                        outcome = type(exc).__name__
                    with lock:
                        outcomes[outcome] += 1
                        count += 1
                        if count == 300:
                            done.set()

        with ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(client, n) for n in range(CLIENTS)]
            assert done.wait(120)
            os.kill(pids[0], signal.SIGKILL)
            for future in running:
                future.result()
        failed = sum(n for outcome, n in outcomes.items() if outcome != "200")
        print(f"{CLIENTS * 150} requests, one process killed: outcomes {dict(outcomes)}")
        assert failed <= CLIENTS, f"more failures than requests in flight: {dict(outcomes)}"

        deadline = time.monotonic() + 90
        while len(api_processes(gateway)) < 3 or pids[0] in api_processes(gateway):
            assert time.monotonic() < deadline, "the killed process was not started again"
            time.sleep(0.5)
        http.close()
    finally:
        stop(gateway)
    assert gateway.returncode == 0
    assert api_processes(gateway) == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_client_over_the_rate_limit_gets_429_and_others_do_not(tmp_path, database):
    gateway, url, certificate = start_gateway(
        tmp_path, database.url, "--processes", "1", "--rate-limit", "20"
    )
    try:
        # Each client from an address of its own (the gateway's start-up checks came from 127.0.0.1).
        busy = httpx.HTTPTransport(local_address="127.0.0.3", verify=trusting(certificate))
        with httpx.Client(base_url=url, transport=busy, timeout=30) as http:
            statuses = [http.get("/healthz").status_code for _ in range(30)]
            assert statuses[:20] == [200] * 20
            assert set(statuses[20:]) == {429}
            limited = http.get("/healthz")
            assert limited.json()["error"]["code"] == "rate_limited"
            assert limited.headers["retry-after"] == "10"
        other = httpx.HTTPTransport(local_address="127.0.0.2", verify=trusting(certificate))
        with httpx.Client(base_url=url, transport=other, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
    finally:
        stop(gateway)
