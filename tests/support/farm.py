"""The farm the farm tests run (its fixture: tests/farm/conftest.py): what it is made of, how a
test submits a job to it and waits, and how it reads what ran (rows, renderer records,
processes)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.render.models import RenderChunk, RenderJob
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as users
from bifrost_core.users.schemas import TokenCreate, UserCreate
from deployments.local_server import local_prefect_server
from flows.registry import ROOT, WORK_POOL
from tests.support.render_records import add_job

FAKE_RENDERER = ROOT / "tests" / "support" / "fake_renderer.py"
BIFROST = str(Path(sys.executable).parent / "bifrost")
SUBMITTER = "td"
HOSTS = {"h1": 1, "h2": 2}


@dataclass
class Farm:
    api_url: str
    env: dict[str, str]
    database: Database
    root: Path
    project_id: int
    task_id: int
    shot_id: int
    user_id: int
    token: str = ""  # the submitter's API token
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def submit(self, command: list[str], **given) -> int:
        """A job as submit records it, then the nudge submit gives: its `render` run."""
        with UnitOfWork(self.database) as uow:
            job = add_job(
                uow.session,
                project_id=self.project_id,
                task_id=self.task_id,
                shot_id=self.shot_id,
                command=command,
                created_by=self.user_id,
                output_dir="pending",
                **{"name": "sh010_lighting", **given},
            )
            job.output_dir = str(self.root / "render" / "DEMO" / f"job-{job.id}")
            uow.commit()
            job_id = job.id
        self.nudge()
        return job_id

    def submit_through_api(self, **body: object) -> int:
        """A job submitted as a client does: POST /projects/{id}/renders (the app in this
        process, on the farm's database and Prefect server), which nudges the render queue."""
        from fastapi.testclient import TestClient

        from api.app import create_app
        from bifrost_core.cache.backends import LocalCache
        from bifrost_core.config import load_settings

        settings = load_settings(
            home=self.env["BIFROST_HOME"],
            database_url=self.env["BIFROST_DATABASE_URL"],
            hot_root=self.env["BIFROST_HOT_ROOT"],
            archive_root=self.env["BIFROST_ARCHIVE_ROOT"],
            render_root=self.env["BIFROST_RENDER_ROOT"],
        )
        with prefect_at(self.api_url):
            app = create_app(settings, database=self.database, cache=LocalCache())
            with TestClient(app) as client:
                answer = client.post(
                    f"/projects/{self.project_id}/renders",
                    json={"task_id": self.task_id, **body},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def nudge(self) -> None:
        """What submit does after recording a job: dispatch now (which starts the job's
        `render` run with its first chunks), not at the queue's next pass."""
        code = "from flows.render import dispatch_now; dispatch_now()"
        subprocess.run([sys.executable, "-c", code], env=self.env, cwd=ROOT, check=True, timeout=120)

    def job(self, job_id: int) -> RenderJob:
        with UnitOfWork(self.database) as uow:
            job = uow.session.get(RenderJob, job_id)
            uow.session.expunge(job)
            return job

    def chunks(self, job_id: int) -> list[RenderChunk]:
        with UnitOfWork(self.database) as uow:
            rows = list(
                uow.session.scalars(
                    select(RenderChunk).where(RenderChunk.job_id == job_id).order_by(RenderChunk.index)
                )
            )
            for row in rows:
                uow.session.expunge(row)
            return rows

    def wait_job(self, job_id: int, states: set[str], timeout: float = 300) -> RenderJob:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)).state not in states:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} still {job.state}: {[(c.index, c.state) for c in self.chunks(job_id)]}"
                )
            self.check_workers()
            time.sleep(0.5)
        return job

    def wait_chunk(self, job_id: int, index: int, state: str, timeout: float = 120) -> RenderChunk:
        deadline = time.monotonic() + timeout
        while (chunk := self.chunks(job_id)[index]).state != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"chunk {index} of job {job_id} still {chunk.state}")
            time.sleep(0.3)
        return chunk

    def cancel(self, job_id: int) -> None:
        """Cancel as the submitter does (the render service's cancel)."""
        from bifrost_core.render import service
        from bifrost_core.users.models import User
        from bifrost_core.users.service import actor_for_user

        with UnitOfWork(self.database) as uow:
            actor = actor_for_user(uow.session, uow.session.get(User, self.user_id))
            service.cancel(uow.session, actor=actor, job_id=job_id)
            uow.commit()

    def start_worker(self, name: str, *arguments: str) -> None:
        log = (self.root / f"worker-{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [BIFROST, "worker", *arguments],
            env={**self.env, "PREFECT_HOME": str(self.root / f"prefect-{name}")},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_end_with_the_tests,
        )

    def wait_hosts(self, hosts: dict[str, int], timeout: float = 180) -> None:
        """Until every GPU worker has declared its GPUs (its `gpu:<host>` limit)."""
        from deployments.render import gpu_hosts

        deadline = time.monotonic() + timeout
        with prefect_at(self.api_url):
            while gpu_hosts() != hosts:
                self.check_workers()
                if time.monotonic() > deadline:
                    raise AssertionError(f"GPU hosts not declared within {timeout:.0f} s: {gpu_hosts()}")
                time.sleep(0.5)

    def check_workers(self) -> None:
        for name, process in self.workers.items():
            if process.poll() is not None and name not in self.killed:
                tail = (self.root / f"worker-{name}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"worker {name} exited {process.returncode}: {tail}")

    killed: set[str] = field(default_factory=set)


@contextlib.contextmanager
def prefect_at(api_url: str) -> Iterator[None]:
    """PREFECT_API_URL names the farm's server inside (what the API and deployments/ read)."""
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        yield
    finally:
        if before is None:
            del os.environ["PREFECT_API_URL"]
        else:
            os.environ["PREFECT_API_URL"] = before


def _end_with_the_tests() -> None:
    # A worker gets SIGTERM when the test process dies, even killed: no worker outlives it.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def records(path: Path) -> list[dict]:
    """The fake renderer's start/end lines."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fake_command(record: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(FAKE_RENDERER),
        "--output",
        "{output}",
        "--frames",
        "{frames}",
        "--record",
        str(record),
        "--tag",
        "{job}.{chunk}",
        *extra,
    ]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), children first found first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def running_farm(
    root: Path, make_database: Callable[[], str], hosts: dict[str, int] = HOSTS, *, cold: bool = False
) -> Iterator[Farm]:
    """The farm on a fresh database from `make_database()` (a PostgreSQL URL maker), under
    `root`; ServerDidNotStart when the Prefect server cannot start. `cold`: workers without
    their warm engine (each run a fresh interpreter)."""
    database = Database(make_database())
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
        token = users.create_token(uow.session, actor=SYSTEM, user_id=user.id, data=TokenCreate(name="farm"))
        uow.commit()
        ids = (project.id, task.id, shot.id, user.id)
    stack = contextlib.ExitStack()
    # The server on PostgreSQL: three workers and their runs are too many writers for SQLite.
    prefect_database = make_database().replace("postgresql+psycopg://", "postgresql+asyncpg://")
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
    try:
        api_url = stack.enter_context(local_prefect_server(root / "prefect-server"))
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
    farm = Farm(api_url, env, database, root, *ids, token=token.token)
    try:
        deployed = subprocess.run(
            [BIFROST, "deploy"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        pause_schedules(api_url)  # the tests nudge the queue themselves
        engine = ("--cold",) if cold else ()
        farm.start_worker("cpu", "--pool", WORK_POOL, *engine)
        for host, gpus in hosts.items():
            farm.start_worker(host, "--pool", "bifrost-gpu", "--gpus", str(gpus), "--host", host, *engine)
        farm.wait_hosts(hosts)
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


def slots_in_use(api_url: str, limit: str) -> int:
    """The active slots of a global concurrency limit on the server at `api_url`."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(limit).active_slots
