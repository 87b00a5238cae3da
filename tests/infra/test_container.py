"""The image of infra/containers/Dockerfile, run with podman (`make image` builds it; `make tools`
does on CI): `bifrost serve` in it answers on a real PostgreSQL database with a read-only root,
its HEALTHCHECK reports healthy, it runs as the unprivileged user, and it holds exactly the pinned
dependencies. A container with no API listening is reported unhealthy, so the health check
really probes. From the same image: the Prefect server, the CLI (`init`, `deploy`, `flow run`)
and a worker that runs a deployment's flow run to Completed.

podman runs here with runc and explicit resource limits (infra/containers/build.sh says why)."""

from __future__ import annotations

import json
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
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
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
        # A removal can lose a race with podman's own clean-up of an exited container: retried.
        for _ in range(3):
            if podman("container", "exists", name).returncode != 0:
                break
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


def test_image_runs_the_prefect_server_the_cli_and_a_worker_that_runs_a_flow(
    containers: list[str], pg_database_url: str
) -> None:
    """The compose file's `prefect`, `migrate` and `worker-cpu` services, from the one image: the
    Prefect server (`--entrypoint prefect`); `bifrost init` and `bifrost deploy` (the CLI); a
    `bifrost worker` that runs a deployment's flow run from the sources at BIFROST_CHECKOUT
    (the deployments' pull step) to Completed."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    environment = ("--env", f"PREFECT_API_URL={api}", "--env", f"BIFROST_DATABASE_URL={pg_database_url}")

    def start(name: str, *arguments: str) -> None:
        containers.append(name)
        started = podman(*RUN, "--detach", "--name", name, "--network", "host", *arguments)
        assert started.returncode == 0, started.stderr

    def cli(*arguments: str) -> str:
        done = podman(*RUN, "--rm", "--network", "host", *environment, *arguments)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def get(path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"{api}{path}", timeout=2)
        except httpx.HTTPError:
            return None

    tag = uuid.uuid4().hex[:8]
    start(
        f"bifrost-test-prefect-{tag}",
        *("--entrypoint", "prefect", "--env", "PREFECT_HOME=/tmp/prefect"),
        *(IMAGE, "server", "start", "--host", "127.0.0.1", "--port", str(port)),
    )
    wait_for(
        "the Prefect server in the container", lambda: getattr(get("/health"), "status_code", 0) == 200, 120
    )

    token = cli(IMAGE, "init").strip().splitlines()[-1]
    assert token.startswith("bft_")
    assert "automation" in cli("--env", f"BIFROST_TOKEN={token}", IMAGE, "deploy")
    worker = f"bifrost-test-worker-{tag}"
    start(worker, *environment, IMAGE, "worker", "--pool", "bifrost-cpu")
    started = json.loads(
        cli("--env", f"BIFROST_TOKEN={token}", IMAGE, "flow", "run", "verify", "--deployment", "--json")
    )

    def finished() -> bool:
        run = get(f"/flow_runs/{started['run_id']}")
        return run is not None and run.status_code == 200 and run.json()["state"]["type"] in FINAL

    try:
        wait_for("the verify run on the worker", finished, timeout=120)
    except AssertionError:
        logs = podman("logs", worker)
        raise AssertionError(
            f"the run did not finish; the worker's log:\n{(logs.stdout + logs.stderr)[-2000:]}"
        ) from None
    assert get(f"/flow_runs/{started['run_id']}").json()["state"]["type"] == "COMPLETED"
