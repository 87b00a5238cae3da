"""A Prefect server in a subprocess on a loopback port, for a workstation, the tests and the benchmarks.

`with local_prefect_server(home) as api_url: ...` starts `prefect server start` with its own
PREFECT_HOME (no UI, no analytics), waits until /api/health answers and stops it on exit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_prefect_server(home: Path, *, port: int | None = None, timeout: float = 120) -> Iterator[str]:
    """Yields the server's API URL; its log is `home/server.log`."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    prefect = str(Path(sys.executable).parent / "prefect")
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(url):
                if server.poll() is not None:
                    raise ServerDidNotStart(f"it exited: {log_path.read_text()[-500:]}")
                if time.monotonic() > deadline:
                    raise ServerDidNotStart(f"no answer on {url}/health within {timeout:.0f} s")
                time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
