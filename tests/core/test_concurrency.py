"""Concurrent publishes to one (task, variant): numbers stay gapless and unique.

Each thread has its own unit of work on one of fifteen pooled connections, all released at once
by a barrier, so the counter row (PostgreSQL row lock, SQLite write lock) is really contended.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import VersionCreate


def _committed_task(uow, build) -> int:
    _, _, task = build.shot_task()
    uow.commit()
    uow.session.close()  # the threads must not wait behind this session
    return task.id


def _publish_concurrently(database: Database, task_id: int, count: int, *, roll_back_every: int = 0):
    # Fifteen connections (pool + overflow) for all the threads: enough for the counter row to be
    # fought over, few enough to leave PostgreSQL's 100 to the tests running beside this one.
    contended = Database(database.url, pool_size=5)
    barrier = threading.Barrier(count)

    def publish(index: int) -> int | None:
        barrier.wait()
        with UnitOfWork(contended) as uow:
            version = versions.create_version(uow.session, actor=SYSTEM, data=VersionCreate(task_id=task_id))
            if roll_back_every and index % roll_back_every == 0:
                return None  # leaving without commit rolls the publish back
            uow.commit()
            return version.number

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(publish, range(count)))
    finally:
        contended.dispose()


def _stored_numbers(database: Database, task_id: int) -> list[int]:
    with UnitOfWork(database) as uow:
        return sorted(uow.session.scalars(select(Version.number).where(Version.task_id == task_id)))


def test_fifty_concurrent_publishes_are_numbered_1_to_50(database, uow, build):
    task_id = _committed_task(uow, build)
    numbers = _publish_concurrently(database, task_id, 50)
    assert sorted(numbers) == list(range(1, 51))
    assert _stored_numbers(database, task_id) == list(range(1, 51))


def test_concurrent_publishes_that_roll_back_leave_no_gap(database, uow, build):
    task_id = _committed_task(uow, build)
    numbers = _publish_concurrently(database, task_id, 30, roll_back_every=3)
    committed = sorted(n for n in numbers if n is not None)
    assert committed == list(range(1, 21))
    assert _stored_numbers(database, task_id) == list(range(1, 21))


# PostgreSQL only: SQLite serialises writers at BEGIN IMMEDIATE, so there is no race to lose.
@pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_transactions_creating_the_same_new_task_type_both_succeed(database, uow, build):
    project = build.project("P1")
    sequence = build.sequence(project)
    first_shot, second_shot = build.shot(sequence, "sh010"), build.shot(sequence, "sh020")
    uow.commit()
    uow.session.close()
    first_flushed = threading.Event()

    def first() -> int:
        with UnitOfWork(database) as unit:
            task = tasks.create_task(
                unit.session, actor=SYSTEM, data=TaskCreate(task_type="plate", shot_id=first_shot.id)
            )
            first_flushed.set()
            # Commit only once the second transaction waits on our uncommitted task type row.
            _wait_for_a_lock_wait(database)
            unit.commit()
            return task.task_type_id

    def second() -> int:
        first_flushed.wait()
        with UnitOfWork(database) as unit:
            task = tasks.create_task(
                unit.session, actor=SYSTEM, data=TaskCreate(task_type="plate", shot_id=second_shot.id)
            )
            unit.commit()
            return task.task_type_id

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        assert a.result() == b.result()
    with UnitOfWork(database) as check:
        assert len(TaskTypeRepository(check.session).list()) == 1
        assert len(TaskRepository(check.session).list()) == 2


def _wait_for_a_lock_wait(database: Database) -> None:
    """Poll pg_stat_activity until another backend of this database waits on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    # Autocommit: inside one transaction PostgreSQL would keep answering from its first snapshot.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for _ in range(500):
            if connection.execute(query).scalar():
                return
            threading.Event().wait(0.02)
    raise AssertionError("the second transaction never blocked on the first one's insert")
