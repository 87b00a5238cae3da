"""The restore drill (issue 14), shared by tests/infra/test_restore_drill.py and
bench/restore_drill.py.

A new PostgreSQL cluster archives its WAL with pgBackRest into an S3 bucket (moto behind TLS);
Bifrost's schema is migrated into it; a writer thread publishes versions through
bifrost_core's services (each with a new blob stored in the hot tier), noting when each commit
returned; meanwhile `bifrost backup create` takes a base backup. Then the cluster is destroyed
(SIGKILL to the postmaster, its data directory removed), `bifrost backup restore` makes a new
cluster from the repository on another port, and Bifrost is pointed at it: the versions that
survived, `verify` of the storage, and the API's answer are what the drill reports, with its
data-loss window (RPO: from the last surviving commit to the failure) and restore time (RTO:
from the failure to the API answering on the restored database).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text

from bifrost_core.backup import archiver
from bifrost_core.config import Settings, load_settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.ingest.roots import blob_store
from bifrost_core.ingest.upkeep import VerifyReport, verify
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as users
from bifrost_core.users.schemas import TokenCreate, UserCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate
from tests.support.pg_cluster import Cluster, owned_folder
from tests.support.pgbackrest import SERVER_USER, archiving_cluster, tls_s3_repository
from tests.support.services import free_port

BIFROST = str(Path(sys.executable).parent / "bifrost")
OPERATOR = "drill-admin"
DATABASE = "bifrost"


@dataclass
class DrillResult:
    archive_timeout: int
    committed: list[tuple[int, float]]  # (version number, when its commit returned), in order
    survived: list[int]  # version numbers in the restored database
    failure_at: float
    backup_seconds: float
    backup_ended_at: float  # when `bifrost backup create` returned
    restore_seconds: float  # `bifrost backup restore`: repository to a promoted server
    rto_seconds: float  # failure to the API's answer on the restored database
    database_bytes: int
    verify: VerifyReport
    api_status: int
    api_projects: list[str]
    restored_url: str
    # The restored server, now the primary, archives its WAL into the same repository.
    archives_after_restore: bool

    @property
    def rpo_seconds(self) -> float:
        """From the last commit that survived to the failure (the whole run: nothing survived)."""
        surviving = [at for number, at in self.committed if number in set(self.survived)]
        return self.failure_at - (surviving[-1] if surviving else self.committed[0][1])

    def survived_after_backup(self) -> int:
        """Versions committed after the base backup ended that came back: from the WAL archive."""
        kept = set(self.survived)
        return sum(1 for number, at in self.committed if at > self.backup_ended_at and number in kept)

    def lost_before(self, seconds: float) -> list[int]:
        """Versions committed more than `seconds` before the failure that did not survive."""
        kept = set(self.survived)
        return [
            number for number, at in self.committed if at < self.failure_at - seconds and number not in kept
        ]

    def report(self) -> str:
        return (
            f"restore drill (archive_timeout {self.archive_timeout} s, "
            f"database {self.database_bytes / 2**20:.1f} MiB): "
            f"{len(self.committed)} versions committed, {len(self.survived)} restored; "
            f"RPO {self.rpo_seconds:.1f} s, RTO {self.rto_seconds:.1f} s "
            f"(restore {self.restore_seconds:.1f} s; base backup {self.backup_seconds:.1f} s)"
        )


class Writer(threading.Thread):
    """Publishes versions of one task, one commit at a time, each with a new stored blob."""

    def __init__(
        self, database: Database, settings: Settings, task_id: int, blobs: Path, pause: float
    ) -> None:
        super().__init__(daemon=True, name="drill-writer")
        self.database = database
        self.store = blob_store(settings, settings.tier_roots["hot"], "hot")
        self.task_id = task_id
        self.blobs = blobs
        self.pause = pause
        self.committed: list[tuple[int, float]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            index += 1
            source = self.blobs / f"frame-{index}.bin"
            source.write_bytes(os.urandom(2048) + index.to_bytes(8, "big"))
            try:
                put = self.store.put_file(source)
                with UnitOfWork(self.database) as uow:
                    record_blobs(uow.session, [(put.digest, put.size, put.url)], "hot")
                    version = versions.create_version(
                        uow.session,
                        actor=SYSTEM,
                        data=VersionCreate(
                            task_id=self.task_id,
                            representations=[RepresentationIn(name="frames", kind="frames",
                                             files=[FileIn(name=source.name, blob_hash=put.digest)])],
                        ),
                    )  # fmt: skip
                    number = version.number
                    uow.commit()
                self.committed.append((number, time.time()))
            except BaseException as exc:  # the server died under it: the drill's failure
                if not self.stop.is_set():
                    self.error = exc
                return
            time.sleep(self.pause)


def _seed(database: Database) -> tuple[int, str]:
    """A project with one task to publish to, and an admin with a token (the CLI's operator)."""
    with UnitOfWork(database) as uow:
        session = uow.session
        project = projects.create_project(
            session, actor=SYSTEM, data=ProjectCreate(code="DRILL", name="Drill")
        )
        sequence = projects.create_sequence(
            session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="SQ010")
        )
        shot = projects.create_shot(
            session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="SH010")
        )
        task = tasks.create_task(session, actor=SYSTEM, data=TaskCreate(task_type="comp", shot_id=shot.id))
        admin = users.create_user(session, actor=SYSTEM, data=UserCreate(username=OPERATOR, is_admin=True))
        token = users.create_token(
            session, actor=SYSTEM, user_id=admin.id, data=TokenCreate(name="drill")
        ).token
        uow.commit()
        return task.id, token


def _archives_after_restore(database: Database, timeout: float = 60) -> bool:
    """A segment switched on the restored server reaches the repository without a failure."""
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE drill_after_restore (n int)"))
        switched = connection.execute(text("SELECT pg_walfile_name(pg_switch_wal())")).scalar_one()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = archiver.read(database)
        if state.failed_count:
            return False
        if state.last_archived_wal and state.last_archived_wal[:24] >= switched:
            return True
        time.sleep(0.2)
    return False


def _cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([BIFROST, *args, "--json"], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"bifrost {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def run_drill(
    home: Path,
    *,
    archive_timeout: int,
    write_after_backup: float,
    pause: float = 0.05,
    preload: Callable[[Database], None] | None = None,
    say: Callable[[str], None] = print,
) -> DrillResult:
    """Run the drill with its files under `home` (Bifrost's home, hot tier); see the module."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from bifrost_core.cache.backends import LocalCache

    with (
        tls_s3_repository() as repository,
        archiving_cluster(repository.options, archive_timeout=archive_timeout) as (
            cluster,
            config,
        ),
    ):
        cluster.run("psql", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "-qc",
                    f"CREATE DATABASE {DATABASE}")  # fmt: skip
        url = f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/{DATABASE}"
        (home / "storage" / "hot").mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "BIFROST_HOME": str(home), "BIFROST_DATABASE_URL": url,
                       "BIFROST_USER": OPERATOR, "BIFROST_BACKUP_PGBACKREST_CONFIG": str(config),
                       "BIFROST_BACKUP_RUN_AS": SERVER_USER if os.geteuid() == 0 else ""}  # fmt: skip
        settings = load_settings(home=home, database_url=url)
        database = Database(url, pool_size=2)
        migrate.upgrade(database)
        task_id, token = _seed(database)
        if preload is not None:
            preload(database)
        sources = home / "sources"
        sources.mkdir(exist_ok=True)
        writer = Writer(database, settings, task_id, sources, pause)
        writer.start()
        began = time.monotonic()
        made = _cli(environment, "backup", "create")
        backup_seconds = time.monotonic() - began
        backup_ended_at = time.time()
        say(f"base backup {made['location']} in {backup_seconds:.1f} s while the writer ran")
        time.sleep(write_after_backup)
        assert writer.error is None and writer.is_alive(), (
            f"the writer stopped before the failure: {writer.error}"
        )
        with database.engine.connect() as connection:
            database_bytes = connection.execute(text(f"SELECT pg_database_size('{DATABASE}')")).scalar_one()
        # The failure: the server killed as a crash would, its data directory lost.
        writer.stop.set()
        failure_at = time.time()
        cluster.kill()
        shutil.rmtree(cluster.data)
        writer.join(30)
        database.dispose()
        failed = time.monotonic()
        say(f"cluster destroyed after {len(writer.committed)} commits; restoring")

        restored = Cluster(owned_folder(), free_port())
        try:
            began = time.monotonic()
            answer = _cli(
                environment, "backup", "restore", "--pg-data", str(restored.data),
                "--port", str(restored.port), "--pg-option", f"unix_socket_directories={restored.root}",
            )  # fmt: skip
            restore_seconds = time.monotonic() - began
            restored_url = url.replace(f":{cluster.port}/", f":{restored.port}/")
            back = Database(restored_url, pool_size=2)
            try:
                app = create_app(load_settings(home=home, database_url=restored_url), database=back,
                                 cache=LocalCache())  # fmt: skip
                with TestClient(app, raise_server_exceptions=False) as client:
                    answered = client.get("/projects", headers={"Authorization": f"Bearer {token}"})
                rto_seconds = time.monotonic() - failed
                assert migrate.is_up_to_date(back), "the restored schema is Bifrost's head"
                with UnitOfWork(back) as uow:
                    survived = list(uow.session.scalars(select(Version.number).order_by(Version.number)))
                    assert uow.session.scalar(select(func.count()).select_from(Version)) == len(survived)
                report = verify(back, load_settings(home=home, database_url=restored_url))
                archives = _archives_after_restore(back)
            finally:
                back.dispose()
            return DrillResult(
                archive_timeout=archive_timeout,
                committed=writer.committed,
                survived=survived,
                failure_at=failure_at,
                backup_seconds=backup_seconds,
                backup_ended_at=backup_ended_at,
                restore_seconds=restore_seconds,
                rto_seconds=rto_seconds,
                database_bytes=database_bytes,
                verify=report,
                api_status=answered.status_code,
                api_projects=[item["code"] for item in answered.json().get("items", [])],
                restored_url=answer["url"],
                archives_after_restore=archives,
            )
        finally:
            if restored.data.exists() and restored.running():
                restored.stop("immediate")
            shutil.rmtree(restored.root, ignore_errors=True)
