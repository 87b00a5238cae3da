"""The image of infra/containers/Dockerfile, run with podman (`make image` builds it; `make tools`
does on CI): `bifrost serve` in it answers on a real PostgreSQL database with a read-only root,
its HEALTHCHECK reports healthy, it runs as the unprivileged user, and it holds exactly the pinned
dependencies. A container with no API listening is reported unhealthy, so the health check
really probes. The Prefect server and `bifrost worker` run from the same image.

podman runs here with runc and explicit resource limits (infra/containers/build.sh says why)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port, service_missing
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
IMAGE = "localhost/bifrost:latest"
LOCK = Path(__file__).resolve().parents[2] / "infra" / "containers" / "requirements.lock"
RUN = ["run", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *arguments], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of the containers (and volumes) a test makes; all removed at the end."""
    if shutil.which("podman") is None:
        service_missing("podman (make tools)", "not on PATH")
    if podman("image", "exists", IMAGE).returncode != 0:
        service_missing(f"the image {IMAGE} (make image)", "not built")
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "--force", "--time", "5", name)
    for name in names:
        podman("volume", "rm", "--force", name)


def test_image_serves_the_api_and_reports_healthy(containers: list[str], pg_database_url: str) -> None:
    port = free_port()
    name = f"bifrost-test-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    # The host's network: the database listens on the host's loopback. As ECS runs it
    # (infra/cloud/aws/compute.tf): a read-only root, BIFROST_HOME and TMPDIR on a scratch
    # volume (a named volume takes the image folder's owner, as Docker's and ECS's do), two
    # worker processes (their metrics share a temporary folder).
    scratch = f"{name}-scratch"
    containers.append(scratch)
    started = podman(
        *(*RUN, "--detach", "--name", name, "--network", "host"),
        *("--read-only", "--read-only-tmpfs=false", "--volume", f"{scratch}:/var/lib/bifrost"),
        *("--env", f"BIFROST_DATABASE_URL={pg_database_url}", "--env", "TMPDIR=/var/lib/bifrost"),
        *("--env", f"BIFROST_HEALTHCHECK_URL=http://127.0.0.1:{port}/readyz"),
        *(IMAGE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
    )
    assert started.returncode == 0, started.stderr

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("the API in the container", ready, timeout=90)
    except AssertionError:
        logs = podman("logs", name)
        raise AssertionError(f"not ready; its log:\n{(logs.stdout + logs.stderr)[-2000:]}") from None
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["checks"]["database"] == "ok"
    health = podman("healthcheck", "run", name)
    assert health.returncode == 0, health.stdout + health.stderr

    identity = podman("exec", name, "id", "-u")
    assert identity.stdout.strip() == "10001"
    # Exactly the lock's packages (and Bifrost itself): the image is built from the lock.
    frozen = podman("exec", name, "pip", "freeze", "--exclude", "bifrost").stdout.split()
    locked = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    assert sorted(frozen, key=str.lower) == sorted(locked, key=str.lower)


def test_health_check_fails_when_the_api_does_not_answer(containers: list[str]) -> None:
    name = f"bifrost-test-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    idle = podman(*RUN, "--detach", "--name", name, "--entrypoint", "sleep", IMAGE, "120")
    assert idle.returncode == 0, idle.stderr
    health = podman("healthcheck", "run", name)
    assert health.returncode != 0
    assert "unhealthy" in (health.stdout + health.stderr)


def test_image_runs_the_prefect_server_and_a_worker(containers: list[str], pg_database_url: str) -> None:
    """The compose file's `prefect` and `worker-cpu` services: the Prefect server from the image
    (`--entrypoint prefect`), and `bifrost worker` from it, online in its pool on that server."""
    port = free_port()
    server = f"bifrost-test-prefect-{uuid.uuid4().hex[:8]}"
    containers.append(server)
    started = podman(
        *(*RUN, "--detach", "--name", server, "--network", "host", "--entrypoint", "prefect"),
        *("--env", "PREFECT_HOME=/tmp/prefect", "--env", "PREFECT_SERVER_ANALYTICS_ENABLED=false"),
        *(IMAGE, "server", "start", "--host", "127.0.0.1", "--port", str(port)),
    )
    assert started.returncode == 0, started.stderr
    api = f"http://127.0.0.1:{port}/api"

    def answers(url: str, body: dict | None = None) -> httpx.Response | None:
        try:
            if body is None:
                return httpx.get(url, timeout=2)
            return httpx.post(url, json=body, timeout=2)
        except httpx.HTTPError:
            return None

    def healthy() -> bool:
        health = answers(f"{api}/health")
        return health is not None and health.status_code == 200

    wait_for("the Prefect server in the container", healthy, timeout=120)

    worker = f"bifrost-test-worker-{uuid.uuid4().hex[:8]}"
    containers.append(worker)
    started = podman(
        *(*RUN, "--detach", "--name", worker, "--network", "host"),
        *("--env", f"PREFECT_API_URL={api}", "--env", f"BIFROST_DATABASE_URL={pg_database_url}"),
        *(IMAGE, "worker", "--pool", "bifrost-cpu"),
    )
    assert started.returncode == 0, started.stderr

    def online() -> bool:
        found = answers(f"{api}/work_pools/bifrost-cpu/workers/filter", {})
        return (
            found is not None
            and found.status_code == 200
            and [w["status"] for w in found.json()] == ["ONLINE"]
        )

    try:
        wait_for("the worker online in bifrost-cpu", online, timeout=90)
    except AssertionError:
        logs = podman("logs", worker)
        raise AssertionError(f"worker not online; its log:\n{(logs.stdout + logs.stderr)[-2000:]}") from None
