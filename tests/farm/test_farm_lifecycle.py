"""The chunk lifecycle on SQLite and PostgreSQL: order, caps, claims, heartbeats, retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Project
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.render import lifecycle
from bifrost_core.render.models import RenderChunk, RenderJob
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from tests.support.render_records import add_job


@pytest.fixture
def place(database: Database) -> dict[str, int]:
    """Two projects with a shot task each."""
    ids = {}
    with UnitOfWork(database) as uow:
        for code in ("ONE", "TWO"):
            project = projects.create_project(
                uow.session, actor=SYSTEM, data=ProjectCreate(code=code, name=code)
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
            ids[code] = project.id
            ids[f"{code}-task"] = task.id
            ids[f"{code}-shot"] = shot.id
        uow.commit()
    return ids


def job(database: Database, place: dict[str, int], project: str = "ONE", **given) -> int:
    with UnitOfWork(database) as uow:
        made = add_job(
            uow.session,
            project_id=place[project],
            task_id=place[f"{project}-task"],
            shot_id=place[f"{project}-shot"],
            **given,
        )
        uow.commit()
        return made.id


def chosen(database: Database, free: int, largest: int = 4) -> list[tuple[int, int]]:
    with UnitOfWork(database) as uow:
        return [
            (c.job_id, c.index) for c in lifecycle.choose(uow.session, free_gpus=free, largest_host=largest)
        ]


def run_chunk(database: Database, chunk: lifecycle.Runnable, host: str = "h1") -> None:
    with UnitOfWork(database) as uow:
        assert lifecycle.dispatch(uow.session, chunk)
        assert lifecycle.claim(
            uow.session, chunk.chunk_id, chunk.attempt, host=host, gpu_ids=[0], log_path="/x"
        )
        uow.commit()


def first(database: Database, job_id: int) -> lifecycle.Runnable:
    with UnitOfWork(database) as uow:
        return next(
            c for c in lifecycle.choose(uow.session, free_gpus=100, largest_host=4) if c.job_id == job_id
        )


def chunk_row(database: Database, chunk_id: int) -> RenderChunk:
    with UnitOfWork(database) as uow:
        row = uow.session.get(RenderChunk, chunk_id)
        uow.session.expunge(row)
        return row


def test_order_is_priority_then_age_then_index(database: Database, place) -> None:
    old_low = job(database, place, frames="1-2", priority=10)
    old = job(database, place, frames="1-2")
    new = job(database, place, frames="1-2")
    urgent = job(database, place, frames="1-2", priority=90)
    assert chosen(database, 100) == [
        (urgent, 0),
        (urgent, 1),
        (old, 0),
        (old, 1),
        (new, 0),
        (new, 1),
        (old_low, 0),
        (old_low, 1),
    ]
    assert chosen(database, 3) == [(urgent, 0), (urgent, 1), (old, 0)]
    assert chosen(database, 0) == []


def test_too_big_chunks_wait_and_smaller_ones_fill_the_slots(database: Database, place) -> None:
    wide = job(database, place, frames="1-2", gpus=2, priority=90)
    narrow = job(database, place, frames="1-2")
    assert chosen(database, 1) == [(narrow, 0)]  # the 2-GPU chunk does not fit one free slot
    assert chosen(database, 3) == [(wide, 0), (narrow, 0)]
    assert chosen(database, 100, largest=1) == [(narrow, 0), (narrow, 1)]  # no host has 2 GPUs


def test_project_cap_counts_what_runs_already(database: Database, place) -> None:
    capped = job(database, place, "ONE", frames="1-4", priority=90)
    other = job(database, place, "TWO", frames="1-2")
    with UnitOfWork(database) as uow:
        uow.session.get(Project, place["ONE"]).config = {"render": {"max_gpus": 2}}
        uow.commit()
    assert chosen(database, 100) == [(capped, 0), (capped, 1), (other, 0), (other, 1)]
    run_chunk(database, first(database, capped))
    assert chosen(database, 100) == [(capped, 1), (other, 0), (other, 1)]


def test_gpus_by_state_counts_dispatched_and_running_chunks(database: Database, place) -> None:
    job(database, place, frames="1-3", gpus=2)
    with UnitOfWork(database) as uow:
        assert lifecycle.gpus_by_state(uow.session) == {}
        ahead, running, _ = lifecycle.choose(uow.session, free_gpus=100, largest_host=4)
        assert lifecycle.dispatch(uow.session, ahead)
        uow.commit()
    run_chunk(database, running)
    with UnitOfWork(database) as uow:
        # What dispatch subtracts: the dispatched ones' GPUs, and the running ones' until
        # the server counts their slots.
        assert lifecycle.gpus_by_state(uow.session) == {lifecycle.DISPATCHED: 2, lifecycle.RUNNING: 2}


def test_a_claim_is_won_once(database: Database, place) -> None:
    job_id = job(database, place, frames="1")
    chunk = first(database, job_id)
    with UnitOfWork(database) as uow:
        assert lifecycle.dispatch(uow.session, chunk)
        assert not lifecycle.dispatch(uow.session, chunk)  # a second dispatcher loses
        uow.commit()
    with UnitOfWork(database) as uow:
        assert lifecycle.claim(
            uow.session, chunk.chunk_id, chunk.attempt, host="a", gpu_ids=[0], log_path="/a"
        )
        uow.commit()
    with UnitOfWork(database) as uow:
        # A duplicated run of the same attempt, and a stale run of an older one, both lose.
        assert not lifecycle.claim(
            uow.session, chunk.chunk_id, chunk.attempt, host="b", gpu_ids=[1], log_path="/b"
        )
        assert not lifecycle.claim(
            uow.session, chunk.chunk_id, chunk.attempt + 1, host="b", gpu_ids=[1], log_path="/b"
        )
        uow.commit()
    row = chunk_row(database, chunk.chunk_id)
    assert (row.state, row.host, row.attempts, row.gpu_ids) == ("running", "a", 1, "0")
    with UnitOfWork(database) as uow:
        assert uow.session.get(RenderJob, job_id).state == "running"


def test_heartbeat_fencing(database: Database, place) -> None:
    job_id = job(database, place, frames="1-2", retries=1)
    chunk = first(database, job_id)
    run_chunk(database, chunk)
    with UnitOfWork(database) as uow:
        assert lifecycle.heartbeat(uow.session, chunk.chunk_id, chunk.attempt)
        assert not lifecycle.heartbeat(uow.session, chunk.chunk_id, chunk.attempt + 1)
        uow.commit()
    # Swept as crashed (its heartbeat stale): the attempt is over, its late beats say stop.
    later = utcnow() + timedelta(seconds=100)
    with UnitOfWork(database) as uow:
        assert lifecycle.sweep_crashed(uow.session, period=5, now=later) == [(chunk.chunk_id, "pending")]
        uow.commit()
    with UnitOfWork(database) as uow:
        assert not lifecycle.heartbeat(uow.session, chunk.chunk_id, chunk.attempt)
        assert (
            lifecycle.finish(uow.session, chunk.chunk_id, chunk.attempt, succeeded=True, exit_code=0) is None
        )
    # A cancelled job: the running chunk's next beat says stop.
    other = first(database, job_id)
    assert other.chunk_id != chunk.chunk_id or other.attempt == 2
    run_chunk(database, other)
    with UnitOfWork(database) as uow:
        uow.session.get(RenderJob, job_id).state = "cancelled"
        uow.commit()
    with UnitOfWork(database) as uow:
        assert not lifecycle.heartbeat(uow.session, other.chunk_id, other.attempt)
        assert (
            lifecycle.finish(uow.session, other.chunk_id, other.attempt, succeeded=False, exit_code=-9)
            == "cancelled"
        )
        uow.commit()


def test_a_fresh_heartbeat_is_not_swept(database: Database, place) -> None:
    chunk = first(database, job(database, place, frames="1"))
    run_chunk(database, chunk)
    with UnitOfWork(database) as uow:
        assert lifecycle.sweep_crashed(uow.session, period=5) == []
        assert lifecycle.sweep_crashed(uow.session, period=5, now=utcnow() + timedelta(seconds=14)) == []


def test_retries_then_failure_and_the_outcome(database: Database, place) -> None:
    job_id = job(database, place, frames="1-2", retries=1)
    states = []
    for attempt in (1, 2):
        chunk = first(database, job_id)
        assert chunk.attempt == attempt
        run_chunk(database, chunk)
        with UnitOfWork(database) as uow:
            states.append(
                lifecycle.finish(
                    uow.session, chunk.chunk_id, attempt, succeeded=False, exit_code=3, error="exit code 3"
                )
            )
            uow.commit()
    assert states == ["pending", "failed"]
    row = chunk_row(database, chunk.chunk_id)
    assert (row.attempts, row.exit_code, row.error) == (2, 3, "exit code 3")
    with UnitOfWork(database) as uow:
        # A job with a failed chunk dispatches nothing more, and has failed once none runs.
        assert lifecycle.choose(uow.session, free_gpus=10, largest_host=4) == []
        assert lifecycle.outcome(uow.session, job_id) == "failed"
        assert lifecycle.end_job(uow.session, job_id, "failed", report="chunk 0")
        uow.commit()


def test_a_job_completes_when_every_chunk_did(database: Database, place) -> None:
    job_id = job(database, place, frames="1-3", chunk_size=2)
    with UnitOfWork(database) as uow:
        assert lifecycle.outcome(uow.session, job_id) is None
    for _ in range(2):
        chunk = first(database, job_id)
        run_chunk(database, chunk)
        with UnitOfWork(database) as uow:
            assert (
                lifecycle.finish(uow.session, chunk.chunk_id, chunk.attempt, succeeded=True, exit_code=0)
                == "completed"
            )
            uow.commit()
    with UnitOfWork(database) as uow:
        found = lifecycle.progress(uow.session, job_id)
        assert (found.frames_done, found.frame_count, found.chunks) == (3, 3, {"completed": 2})
        assert lifecycle.outcome(uow.session, job_id) == "completed"
        assert lifecycle.end_job(uow.session, job_id, "completed")
        assert not lifecycle.end_job(uow.session, job_id, "failed")  # ended once
        uow.commit()
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(RenderJob.state).where(RenderJob.id == job_id)) == "completed"


def test_a_dispatch_whose_run_never_claimed_counts_as_an_attempt(database: Database, place) -> None:
    job_id = job(database, place, frames="1", retries=1)
    for attempt, expected in ((1, "pending"), (2, "failed")):
        chunk = first(database, job_id)
        assert chunk.attempt == attempt
        with UnitOfWork(database) as uow:
            assert lifecycle.dispatch(uow.session, chunk)
            stuck = lifecycle.stuck_dispatches(
                uow.session, older_than=timedelta(0), now=utcnow() + timedelta(1)
            )
            assert [(c, a) for c, a, _, _ in stuck] == [(chunk.chunk_id, attempt)]
            assert (
                lifecycle.abandon(uow.session, chunk.chunk_id, attempt, error="its run crashed") == expected
            )
            uow.commit()
        # Its late run finds the chunk no longer dispatched as that attempt: nothing runs.
        with UnitOfWork(database) as uow:
            assert not lifecycle.claim(
                uow.session, chunk.chunk_id, attempt, host="h", gpu_ids=[0], log_path="/x"
            )
    row = chunk_row(database, chunk.chunk_id)
    assert (row.state, row.attempts, row.error) == ("failed", 2, "its run crashed")


def test_a_chunk_dispatched_ahead_waits_alive_and_goes_back_when_its_host_dies(
    database: Database, place
) -> None:
    job_id = job(database, place, frames="1-2", retries=0)
    chunk = first(database, job_id)
    with UnitOfWork(database) as uow:
        assert lifecycle.dispatch(uow.session, chunk)
        assert lifecycle.waiting(uow.session, chunk.chunk_id, chunk.attempt)  # its heartbeat
        assert not lifecycle.waiting(uow.session, chunk.chunk_id, chunk.attempt + 1)
        uow.commit()
    with UnitOfWork(database) as uow:
        assert lifecycle.sweep_waiting(uow.session, period=5) == []  # fresh: left alone
        # Silent for longer than three periods: its host died before it started.
        later = utcnow() + timedelta(seconds=100)
        assert lifecycle.sweep_waiting(uow.session, period=5, now=later) == [chunk.chunk_id]
        uow.commit()
    row = chunk_row(database, chunk.chunk_id)
    # Pending again without an attempt counted (its command never ran), even with no retries.
    assert (row.state, row.attempts, row.heartbeat_at, row.prefect_run_id) == ("pending", 0, None, None)
    again = first(database, job_id)
    assert (again.chunk_id, again.attempt) == (chunk.chunk_id, chunk.attempt)


def test_a_waiting_chunk_of_a_cancelled_job_is_not_wanted(database: Database, place) -> None:
    job_id = job(database, place, frames="1")
    chunk = first(database, job_id)
    with UnitOfWork(database) as uow:
        assert lifecycle.dispatch(uow.session, chunk)
        uow.session.get(RenderJob, job_id).state = "cancelled"
        uow.commit()
    with UnitOfWork(database) as uow:
        assert not lifecycle.waiting(uow.session, chunk.chunk_id, chunk.attempt)
