"""A real farm for the farm tests, once per session: a Prefect server on a free loopback port,
the registry's deployments (`bifrost deploy`), one CPU worker and two GPU workers (`bifrost
worker`, hosts `h1` with 1 GPU and `h2` with 2) as processes, on a throwaway PostgreSQL
database with a project to render for. Every process is stopped at the end.

The workers poll every second and chunks beat every second (crashed after 3 s without), so
a job of a few chunks takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bifrost-test-prefect-"))

from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as users
from bifrost_core.users.schemas import UserCreate
from deployments.local_server import ServerDidNotStart, local_prefect_server
from flows.registry import ROOT, WORK_POOL
from tests.support.farm import BIFROST, HOSTS, SUBMITTER, Farm
from tests.support.services import service_missing


@pytest.fixture(scope="session")
def farm(tmp_path_factory: pytest.TempPathFactory, make_pg_database) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    database = Database(make_pg_database())
    migrate.upgrade(database)
    for tier in ("hot", "archive"):
        (root / "tiers" / tier).mkdir(parents=True)
    with UnitOfWork(database) as uow:
        user = users.create_user(
            uow.session, actor=SYSTEM, data=UserCreate(username=SUBMITTER, is_admin=True)
        )
        users.create_user(
            uow.session, actor=SYSTEM, data=UserCreate(username="bifrost-service", is_admin=True)
        )
        project = projects.create_project(
            uow.session, actor=SYSTEM, data=ProjectCreate(code="DEMO", name="Demo")
        )
        sequence = projects.create_sequence(
            uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
        )
        shot = projects.create_shot(
            uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010")
        )
        task = tasks.create_task(
            uow.session, actor=SYSTEM, data=TaskCreate(task_type="lighting", shot_id=shot.id)
        )
        uow.commit()
        ids = (project.id, task.id, shot.id, user.id)
    stack = contextlib.ExitStack()
    # The server on PostgreSQL: three workers and their runs are too many writers for SQLite.
    prefect_database = make_pg_database().replace("postgresql+psycopg://", "postgresql+asyncpg://")
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
    try:
        api_url = stack.enter_context(local_prefect_server(root / "prefect-server"))
    except ServerDidNotStart as exc:
        service_missing("Prefect server", str(exc))
    finally:
        del os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
    env = {
        **{
            name: value for name, value in os.environ.items() if not name.startswith(("BIFROST_", "PREFECT_"))
        },
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(root / "prefect-client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "BIFROST_HOME": str(root / "home"),
        "BIFROST_DATABASE_URL": database.url,
        "BIFROST_HOT_ROOT": str(root / "tiers" / "hot"),
        "BIFROST_ARCHIVE_ROOT": str(root / "tiers" / "archive"),
        "BIFROST_RENDER_ROOT": str(root / "render"),
        "BIFROST_RENDER_HEARTBEAT_SECONDS": "1",
        "BIFROST_USER": SUBMITTER,
    }
    farm = Farm(api_url, env, database, root, *ids)
    try:
        deployed = subprocess.run(
            [BIFROST, "deploy"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        pause_schedules(api_url)  # the tests nudge the queue themselves
        farm.start_worker("cpu", "--pool", WORK_POOL)
        for host, gpus in HOSTS.items():
            farm.start_worker(host, "--pool", "bifrost-gpu", "--gpus", str(gpus), "--host", host)
        yield farm
    finally:
        for process in farm.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in farm.workers.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stack.close()
        database.dispose()


def pause_schedules(api_url: str) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def pause() -> None:
        async with get_client() as client:
            for deployment in await client.read_deployments():
                if deployment.schedules:
                    await client.pause_deployment(deployment.id)

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        asyncio.run(pause())
