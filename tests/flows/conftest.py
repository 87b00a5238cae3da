"""A real Prefect server for the flow tests (one per session), and the environment a flow's
tasks read their settings from.

Prefect reads its settings when it is imported: PREFECT_HOME is pointed at a temporary
folder before that, so the tests never write to ~/.prefect.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bifrost-test-prefect-"))
ROOT = Path(__file__).resolve().parents[2]
# The production, settings and delivery fixtures are shared with tests/ingest.
sys.path.insert(0, str(ROOT / "tests" / "ingest"))

from ingest_helpers import delivery, production, s3_endpoint, s3_settings, settings  # noqa: E402

__all__ = ["delivery", "production", "s3_endpoint", "s3_settings", "settings"]


def service_missing(config: pytest.Config, what: str, reason: str) -> None:
    """The root conftest's rule: skip on a laptop, fail under CI."""
    config.pluginmanager.get_plugin(str(ROOT / "tests" / "conftest.py")).service_missing(what, reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    try:
        while True:
            if server.poll() is not None:
                service_missing(request.config, "Prefect server", (home / "server.log").read_text()[-500:])
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                service_missing(request.config, "Prefect server", "no answer on /api/health within 90 s")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def prefect_server(prefect_api: str) -> Iterator[str]:
    """Flows run in this process report to the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield prefect_api


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> dict[str, str]:
    """BIFROST_* variables for the flow's tasks (they read settings from the environment)."""
    env = {
        "BIFROST_HOME": str(settings.home),
        "BIFROST_DATABASE_URL": settings.database,
        "BIFROST_HOT_ROOT": settings.tier_roots["hot"],
        "BIFROST_ARCHIVE_ROOT": settings.tier_roots["archive"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
