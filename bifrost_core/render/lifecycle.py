"""The life of render chunks on the farm: which run next, and every change of their state.

Prefect-free (flows/render.py drives it). Each change is one conditional UPDATE whose WHERE
clause states what must still be true (the chunk's state and attempt, the job's state), so
two processes racing for the same chunk cannot both win, on SQLite as on PostgreSQL, without
holding locks across a round trip:

    pending --dispatch--> dispatched --claim--> running --finish--> completed
       ^                                           |  \\-- failed attempt, attempts left --> pending
       |                                           |  \\-- failed attempt, none left ------> failed
       +------ sweep (heartbeat stale: crashed) ---+  \\-- job cancelled meanwhile --------> cancelled

`attempts` counts the attempts started: `claim(attempt=n)` succeeds only for the chunk
dispatched as attempt n (`attempts == n - 1`), so a late or duplicated chunk run finds its
chunk taken and runs nothing. A chunk whose heartbeat stops (its worker killed with -9) is
swept as a crashed attempt and dispatched again, to whichever host has a free slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.projects.models import Project
from bifrost_core.render.models import RenderChunk, RenderJob

# Chunk and job states (records: bifrost_core/render).
PENDING, DISPATCHED, RUNNING = "pending", "dispatched", "running"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
QUEUED = "queued"
LIVE_JOBS = (QUEUED, RUNNING)
ACTIVE_CHUNKS = (DISPATCHED, RUNNING)
# A chunk whose heartbeat is older than this many periods has crashed.
STALE_PERIODS = 3


@dataclass(frozen=True)
class Runnable:
    """A chunk chosen to dispatch, with what its run needs."""

    chunk_id: int
    job_id: int
    index: int
    attempt: int  # the attempt it is dispatched as
    gpus: int
    project_id: int


def _live_job():
    """The condition every chunk update carries: its job is still queued or running."""
    return exists().where(RenderJob.id == RenderChunk.job_id, RenderJob.state.in_(LIVE_JOBS))


def project_cap(config: dict | None) -> int | None:
    """A project's share of the farm: `{"render": {"max_gpus": N}}` in its config."""
    render = (config or {}).get("render")
    cap = render.get("max_gpus") if isinstance(render, dict) else None
    return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0 else None


def gpus_in_flight(session: Session) -> Counter[int]:
    """GPUs held or about to be held (dispatched or running chunks), by project."""
    rows = session.execute(
        select(RenderJob.project_id, func.sum(RenderJob.gpus_per_chunk))
        .join(RenderChunk, RenderChunk.job_id == RenderJob.id)
        .where(RenderChunk.state.in_(ACTIVE_CHUNKS))
        .group_by(RenderJob.project_id)
    )
    return Counter({project_id: int(total or 0) for project_id, total in rows})


def gpus_by_state(session: Session) -> Counter[str]:
    """GPUs of the dispatched chunks (promised, not yet counted by Prefect's limits) and of
    the running ones (a running chunk takes its slots there just after its command started)."""
    rows = session.execute(
        select(RenderChunk.state, func.sum(RenderJob.gpus_per_chunk))
        .join(RenderChunk, RenderChunk.job_id == RenderJob.id)
        .where(RenderChunk.state.in_(ACTIVE_CHUNKS))
        .group_by(RenderChunk.state)
    )
    return Counter({state: int(total or 0) for state, total in rows})


def choose(
    session: Session, *, free_gpus: int, largest_host: int, project_id: int | None = None, limit: int = 500
) -> list[Runnable]:
    """Pending chunks to dispatch now, in the global order (job priority desc, job age,
    chunk index), while `free_gpus` last, within each project's cap. A chunk that does not
    fit what is left is passed over for smaller ones behind it (nothing idles while it
    waits); one needing more GPUs than the largest host has is never chosen. `project_id`:
    only that project's chunks."""
    if free_gpus <= 0:
        return []
    failed_chunk = exists().where(RenderChunk.job_id == RenderJob.id, RenderChunk.state == FAILED)
    only = [] if project_id is None else [RenderJob.project_id == project_id]
    rows = session.execute(
        select(
            RenderChunk.id,
            RenderChunk.job_id,
            RenderChunk.index,
            RenderChunk.attempts,
            RenderJob.gpus_per_chunk,
            RenderJob.project_id,
        )
        .join(RenderJob, RenderChunk.job_id == RenderJob.id)
        .where(
            RenderChunk.state == PENDING,
            RenderJob.state.in_(LIVE_JOBS),
            RenderJob.gpus_per_chunk <= largest_host,
            ~failed_chunk.correlate(RenderJob),
            *only,
        )
        .order_by(RenderJob.priority.desc(), RenderJob.created_at, RenderJob.id, RenderChunk.index)
        .limit(limit)
    ).all()
    if not rows:
        return []
    projects = {row.project_id for row in rows}
    caps = {
        project_id: project_cap(config)
        for project_id, config in session.execute(
            select(Project.id, Project.config).where(Project.id.in_(projects))
        )
    }
    used = gpus_in_flight(session)
    chosen: list[Runnable] = []
    for row in rows:
        gpus = row.gpus_per_chunk
        if gpus > free_gpus:
            continue
        cap = caps.get(row.project_id)
        if cap is not None and used[row.project_id] + gpus > cap:
            continue
        chosen.append(Runnable(row.id, row.job_id, row.index, row.attempts + 1, gpus, row.project_id))
        free_gpus -= gpus
        used[row.project_id] += gpus
        if free_gpus == 0:
            break
    return chosen


def dispatch(session: Session, chunk: Runnable, *, now: datetime | None = None) -> bool:
    """pending -> dispatched, if the chunk is still pending at the same attempt count."""
    result = session.execute(
        update(RenderChunk)
        .where(
            RenderChunk.id == chunk.chunk_id,
            RenderChunk.state == PENDING,
            RenderChunk.attempts == chunk.attempt - 1,
        )
        .values(state=DISPATCHED, dispatched_at=now or utcnow(), prefect_run_id=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def dispatched_as(session: Session, chunk_id: int, attempt: int, run_id: str) -> None:
    """Record the Prefect run a dispatched chunk was given."""
    session.execute(
        update(RenderChunk)
        .where(RenderChunk.id == chunk_id, RenderChunk.attempts == attempt - 1)
        .values(prefect_run_id=run_id)
        .execution_options(synchronize_session=False)
    )


def undispatch(session: Session, chunk_id: int, attempt: int) -> bool:
    """dispatched -> pending, when its run could not be created (it is dispatched again later)."""
    result = session.execute(
        update(RenderChunk)
        .where(
            RenderChunk.id == chunk_id, RenderChunk.state == DISPATCHED, RenderChunk.attempts == attempt - 1
        )
        .values(state=PENDING, dispatched_at=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def waiting(session: Session, chunk_id: int, attempt: int, *, now: datetime | None = None) -> bool:
    """A chunk dispatched ahead waits for its host's GPUs: it says so (its heartbeat, so a
    host that dies meanwhile is noticed: `sweep_waiting`), and learns whether it should still
    run: False when it is no longer dispatched at this attempt or its job was cancelled."""
    result = session.execute(
        update(RenderChunk)
        .where(
            RenderChunk.id == chunk_id,
            RenderChunk.state == DISPATCHED,
            RenderChunk.attempts == attempt - 1,
            _live_job(),
        )
        .values(heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def sweep_waiting(session: Session, *, period: float, now: datetime | None = None) -> list[int]:
    """Chunks that waited for their GPUs and then went silent (their host died before they
    started): back to pending, no attempt counted (their command never ran); a run of the
    old dispatch that comes back finds its claim refused or, first, wins it alone."""
    stale = (now or utcnow()) - timedelta(seconds=period * STALE_PERIODS)
    condition = [
        RenderChunk.state == DISPATCHED,
        RenderChunk.heartbeat_at.is_not(None),
        RenderChunk.heartbeat_at < stale,
    ]
    found = list(session.scalars(select(RenderChunk.id).where(*condition)))
    returned = []
    for chunk_id in found:
        result = session.execute(
            update(RenderChunk)
            .where(RenderChunk.id == chunk_id, *condition)
            .values(state=PENDING, dispatched_at=None, heartbeat_at=None, prefect_run_id=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            returned.append(chunk_id)
    return returned


def claim(
    session: Session,
    chunk_id: int,
    attempt: int,
    *,
    host: str,
    gpu_ids: list[int],
    log_path: str,
    now: datetime | None = None,
) -> bool:
    """dispatched -> running as attempt `attempt`, on `host`: False when someone else has it
    (another run of the same attempt, a later attempt) or its job is no longer live."""
    now = now or utcnow()
    result = session.execute(
        update(RenderChunk)
        .where(
            RenderChunk.id == chunk_id,
            RenderChunk.state == DISPATCHED,
            RenderChunk.attempts == attempt - 1,
            _live_job(),
        )
        .values(
            state=RUNNING,
            attempts=attempt,
            host=host,
            gpu_ids=",".join(str(gpu) for gpu in gpu_ids),
            log_path=log_path,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            exit_code=None,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    job_id = session.scalar(select(RenderChunk.job_id).where(RenderChunk.id == chunk_id))
    session.execute(
        update(RenderJob)
        .where(RenderJob.id == job_id, RenderJob.state == QUEUED)
        .values(state=RUNNING, started_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


def heartbeat(session: Session, chunk_id: int, attempt: int, *, now: datetime | None = None) -> bool:
    """The running chunk is alive: False when it was taken away (swept as crashed, so its
    attempt is over) or its job is no longer live (cancelled): its command must stop."""
    result = session.execute(
        update(RenderChunk)
        .where(
            RenderChunk.id == chunk_id,
            RenderChunk.state == RUNNING,
            RenderChunk.attempts == attempt,
            _live_job(),
        )
        .values(heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish(
    session: Session,
    chunk_id: int,
    attempt: int,
    *,
    succeeded: bool,
    exit_code: int | None,
    error: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """End attempt `attempt`: completed; or a failed attempt, pending again while attempts
    <= the job's retries, else failed; or cancelled when its job was cancelled meanwhile.
    Returns the chunk's new state, None when the attempt was no longer the chunk's."""
    return _end(
        session,
        [RenderChunk.id == chunk_id, RenderChunk.state == RUNNING, RenderChunk.attempts == attempt],
        succeeded=succeeded,
        exit_code=exit_code,
        error=error,
        now=now or utcnow(),
    )


def _end(
    session: Session,
    where: list,
    *,
    succeeded: bool,
    exit_code: int | None,
    error: str | None,
    now: datetime,
    attempts: int | None = None,
) -> str | None:
    """`attempts`: the attempt count to record (an attempt that never started still counts)."""
    row = session.execute(
        select(RenderChunk.attempts, RenderJob.retries, RenderJob.state)
        .join(RenderJob, RenderChunk.job_id == RenderJob.id)
        .where(*where)
    ).first()
    if row is None:
        return None
    if row.state not in LIVE_JOBS:
        state = CANCELLED if row.state == CANCELLED else FAILED
    elif succeeded:
        state = COMPLETED
    else:
        state = PENDING if (attempts or row.attempts) <= row.retries else FAILED
    result = session.execute(
        update(RenderChunk)
        .where(*where)
        .values(
            attempts=attempts or RenderChunk.attempts,
            state=state,
            exit_code=exit_code,
            error=None if succeeded else error,
            finished_at=now,
            heartbeat_at=None,
            dispatched_at=None if state == PENDING else RenderChunk.dispatched_at,
        )
        .execution_options(synchronize_session=False)
    )
    return state if result.rowcount == 1 else None


def sweep_crashed(session: Session, *, period: float, now: datetime | None = None) -> list[tuple[int, str]]:
    """Running chunks whose heartbeat is older than STALE_PERIODS periods: their process is
    gone (worker killed, host down). Each is ended as a failed attempt (so it is retried
    elsewhere, or fails when it has no attempts left). Returns (chunk id, new state)."""
    now = now or utcnow()
    stale = now - timedelta(seconds=period * STALE_PERIODS)
    candidates = session.execute(
        select(RenderChunk.id, RenderChunk.attempts).where(
            RenderChunk.state == RUNNING,
            or_(RenderChunk.heartbeat_at.is_(None), RenderChunk.heartbeat_at < stale),
        )
    ).all()
    swept = []
    for chunk_id, attempts in candidates:
        # Still stale when ended: a heartbeat that just came back keeps its chunk.
        state = _end(
            session,
            [
                RenderChunk.id == chunk_id,
                RenderChunk.state == RUNNING,
                RenderChunk.attempts == attempts,
                or_(RenderChunk.heartbeat_at.is_(None), RenderChunk.heartbeat_at < stale),
            ],
            succeeded=False,
            exit_code=None,
            error=f"crashed: no heartbeat for {period * STALE_PERIODS:.0f} s",
            now=now,
        )
        if state is not None:
            swept.append((chunk_id, state))
    return swept


@dataclass
class Progress:
    """Where a job stands: its chunks by state and its frames done."""

    job_id: int
    state: str
    chunks: dict[str, int] = field(default_factory=dict)
    frames_done: int = 0
    frame_count: int = 0

    @property
    def chunk_total(self) -> int:
        return sum(self.chunks.values())


def progress(session: Session, job_id: int) -> Progress:
    job = session.get(RenderJob, job_id)
    if job is None:
        raise LookupError(f"no render job {job_id}")
    found = Progress(job_id=job_id, state=job.state, frame_count=job.frame_count)
    for state, count, frames in session.execute(
        select(RenderChunk.state, func.count(), func.sum(RenderChunk.frame_count))
        .where(RenderChunk.job_id == job_id)
        .group_by(RenderChunk.state)
    ):
        found.chunks[state] = count
        if state == COMPLETED:
            found.frames_done = int(frames or 0)
    return found


def outcome(session: Session, job_id: int) -> str | None:
    """What the job's chunks add up to: COMPLETED (every chunk), FAILED (a chunk failed and
    none is still dispatched or running), CANCELLED (the job was), None (still going)."""
    found = progress(session, job_id)
    if found.state == CANCELLED:
        return CANCELLED
    if found.chunk_total and found.chunks.get(COMPLETED, 0) == found.chunk_total:
        return COMPLETED
    active = sum(found.chunks.get(state, 0) for state in ACTIVE_CHUNKS)
    if found.chunks.get(FAILED) and not active:
        return FAILED
    return None


def end_job(
    session: Session,
    job_id: int,
    state: str,
    *,
    report: str | None = None,
    version_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """A live job becomes completed or failed (with its report, its version); False when it
    was no longer live (cancelled meanwhile)."""
    values: dict = {"state": state, "finished_at": now or utcnow(), "report": report}
    if version_id is not None:
        values["version_id"] = version_id
    result = session.execute(
        update(RenderJob)
        .where(RenderJob.id == job_id, RenderJob.state.in_(LIVE_JOBS))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def followed_by(session: Session, job_id: int, previous: str | None, run_id: str) -> bool:
    """Record the job's `render` run, replacing `previous` (the first dispatcher wins)."""
    same = RenderJob.prefect_run_id.is_(None) if previous is None else RenderJob.prefect_run_id == previous
    result = session.execute(
        update(RenderJob)
        .where(RenderJob.id == job_id, same)
        .values(prefect_run_id=run_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def abandon(
    session: Session, chunk_id: int, attempt: int, *, error: str, now: datetime | None = None
) -> str | None:
    """A dispatched chunk whose run ended without claiming it (it failed to start, or its
    worker died first): attempt `attempt` is over, failed; retried while attempts are left."""
    return _end(
        session,
        [RenderChunk.id == chunk_id, RenderChunk.state == DISPATCHED, RenderChunk.attempts == attempt - 1],
        succeeded=False,
        exit_code=None,
        error=error,
        now=now or utcnow(),
        attempts=attempt,
    )


def stuck_dispatches(session: Session, *, older_than: timedelta, now: datetime | None = None) -> list[tuple]:
    """Chunks dispatched long ago and never claimed: (chunk id, attempt, Prefect run id,
    dispatched at), for the dispatcher to check their runs (a run that crashed before its
    claim leaves its chunk dispatched)."""
    cutoff = (now or utcnow()) - older_than
    return [
        (chunk_id, attempts + 1, run_id, dispatched_at)
        for chunk_id, attempts, run_id, dispatched_at in session.execute(
            select(
                RenderChunk.id, RenderChunk.attempts, RenderChunk.prefect_run_id, RenderChunk.dispatched_at
            ).where(RenderChunk.state == DISPATCHED, RenderChunk.dispatched_at < cutoff)
        )
    ]
