"""Render benchmark, in sections (figures printed, never asserted):

    .venv/bin/python -m bench.render [--section planning] [--pg postgresql://postgres@127.0.0.1:5432]
                                    [--repeat 5]

planning: submit a 10,000-frame job (frame set parsed, cut into chunks, job and chunks recorded
    and committed) at chunk size 1 and 10, through the render service, on SQLite and, with --pg,
    on a throwaway PostgreSQL database. Target: <= 1 s each. The figure is the median of
    --repeat submits (each its own job and transaction) after one warm-up.

The farm sections (dispatch delay, per-chunk overhead) join here as further `SECTIONS`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

FRAMES = "1-10000"
PLANNING_TARGET = 1.0


def _seed(url: str) -> tuple[int, int]:
    """A project with a shot task; (project id, task id)."""
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.projects import service as projects
    from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
    from bifrost_core.scope import SYSTEM
    from bifrost_core.tasks import service as tasks
    from bifrost_core.tasks.schemas import TaskCreate

    database = Database(url)
    try:
        with UnitOfWork(database) as uow:
            project = projects.create_project(
                uow.session, actor=SYSTEM, data=ProjectCreate(code="BENCH", name="Bench")
            )
            sequence = projects.create_sequence(
                uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
            )
            shot = projects.create_shot(
                uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010")
            )
            task = tasks.create_task(
                uow.session, actor=SYSTEM, data=TaskCreate(task_type="light", shot_id=shot.id)
            )
            uow.commit()
            return project.id, task.id
    finally:
        database.dispose()


def _time_submit(url: str, project_id: int, task_id: int, chunk_size: int, repeat: int) -> tuple[float, int]:
    """Median seconds of a submit-and-commit of the 10,000-frame job, and its chunk count."""
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.render import service
    from bifrost_core.render.schemas import RenderJobCreate
    from bifrost_core.scope import SYSTEM

    database = Database(url)
    data = RenderJobCreate(
        task_id=task_id,
        command=["render", "-s", "{first}", "-e", "{last}", "-j", "{step}", "-o", "{output}"],
        frames=FRAMES,
        chunk_size=chunk_size,
    )
    times = []
    try:
        for _ in range(repeat + 1):  # the first warms caches and compiled statements
            start = time.perf_counter()
            with UnitOfWork(database) as uow:
                job = service.submit(
                    uow.session,
                    actor=SYSTEM,
                    project_id=project_id,
                    data=data,
                    gpu_hosts={"bench-host": 2},
                    render_root=Path("/render"),
                )
                uow.commit()
            times.append(time.perf_counter() - start)
        with UnitOfWork(database) as uow:
            chunks = service.progress_of(
                uow.session, [service.get_job(uow.session, actor=SYSTEM, job_id=job.id)]
            )
    finally:
        database.dispose()
    return statistics.median(times[1:]), chunks[job.id].chunks_total


def _databases(pg: str | None) -> list[tuple[str, str, Callable[[], None]]]:
    """(label, migrated database URL, drop) for SQLite and, with --pg, PostgreSQL."""
    from bifrost_core.db import migrate
    from bifrost_core.db.database import Database

    found = []
    folder = Path(tempfile.mkdtemp(prefix="bifrost-bench-render-"))
    urls = [("sqlite", f"sqlite:///{folder / 'bench.db'}", lambda: None)]
    if pg:
        import psycopg

        name = f"bifrost_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        urls.append(("postgresql", f"postgresql+psycopg://{pg.split('://', 1)[1]}/{name}", drop))
    for label, url, drop in urls:
        database = Database(url)
        migrate.upgrade(database)
        database.dispose()
        found.append((label, url, drop))
    return found


def planning(args: argparse.Namespace) -> None:
    print(f"planning: submit a {FRAMES} job (parse, cut, record, commit); target <= {PLANNING_TARGET:.1f} s")
    for label, url, drop in _databases(args.pg):
        try:
            project_id, task_id = _seed(url)
            for chunk_size in (1, 10):
                seconds, chunks = _time_submit(url, project_id, task_id, chunk_size, args.repeat)
                verdict = "ok" if seconds <= PLANNING_TARGET else "OVER TARGET"
                print(
                    f"  {label:<10} chunk size {chunk_size:>2}: {chunks:>6} chunks {seconds:.3f} s {verdict}"
                )
        finally:
            drop()


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"planning": planning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append", help="default: all")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="'' to skip PostgreSQL")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name in args.section or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
