"""Concurrent publishes to one (task, variant): numbers stay gapless and unique.

Each thread has its own unit of work on its own pooled connection, all released at once by a
barrier, so the counter row (PostgreSQL row lock, SQLite write lock) is really contended.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SYSTEM
from bifrost_core.versions import service as versions
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import VersionCreate


def _committed_task(uow, build) -> int:
    _, _, task = build.shot_task()
    uow.commit()
    uow.session.close()  # the threads must not wait behind this session
    return task.id


def _publish_concurrently(database: Database, task_id: int, count: int, *, roll_back_every: int = 0):
    # Enough connections for every thread at once on PostgreSQL (pool + overflow).
    contended = Database(database.url, pool_size=count // 2 + 1)
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
