"""The render farm's flows: `render-queue` dispatches, `render-chunk` renders, `render` follows a job.

- `render-queue` (bifrost-cpu, every 30 s, as the service user): sweeps chunks whose
  heartbeat stopped (a crashed attempt: retried elsewhere, or failed), then dispatches
  pending chunks in the global order (job priority, job age, chunk index) while GPU slots
  are free, each as a run of `render-chunk` in the work queue `gpus-<k>` of its GPU count.
- `render-chunk` (bifrost-gpu): holds k slots of its host's limit `gpu:<host>` and k GPU ids,
  claims its chunk (so a chunk never runs twice at once), runs the command with a timeout,
  a log and a heartbeat that stops it when the job is cancelled, records the outcome, and
  dispatches again so the slot it frees is reused at once.
- `render` (bifrost-cpu, one run per job, as its submitter): follows the job (sweeping and
  dispatching too, so a job moves on between the queue's passes), publishes its progress,
  and at the end ingests the frames as a new version of the job's task, or fails the job
  with a report naming the failed chunks and the last lines of their logs.

Dispatch is `dispatch_now()`. A submit (API or CLI) starts a `render-queue` pass over its
project at once (deployments/render.py `nudge`), so a job does not wait for the next pass.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.states import Failed, State
from pydantic import Field

from bifrost_core.db.base import utcnow
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput
from bifrost_core.ingest.planning import active_project
from bifrost_core.ingest.schemas import PublishRequest
from bifrost_core.render import execution, lifecycle
from bifrost_core.render.farm import ChunkWork, JobView, chunk_work, failed_chunks, job_view, record_version
from bifrost_core.text import escape_markdown
from flows.parameters import Actor, ProjectCode
from flows.registry import entry, project_tag
from flows.runs import begin, begin_studio
from tasks.common import context
from tasks.ingest import plan_publish, store_and_register

RecordId = Annotated[int, Field(ge=1)]
# Environment of the renderer: the job's own variables, CUDA_VISIBLE_DEVICES and these of
# the worker (so a command finds its executable and its home), not the worker's settings.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "BIFROST_WORKER_HOST")
LOG_LINES = 20
# A dispatched chunk unclaimed this long has its run checked (a run that failed before its
# claim, e.g. its worker died, leaves the chunk dispatched).
STALE_DISPATCH_SECONDS = 10
# Chunks dispatched ahead, per GPU slot (bifrost worker's default --limit makes room for them).
DISPATCH_AHEAD = 1


def heartbeat_seconds() -> float:
    """How often a running chunk says it is alive (three missed beats: crashed)."""
    return float(os.environ.get("BIFROST_RENDER_HEARTBEAT_SECONDS", "5"))


# ---------------------------------------------------------------- dispatch


def free_gpu_slots() -> tuple[int, int, int]:
    """Free slots over every `gpu:<host>` limit, all their slots, and the largest host's."""
    from prefect.client.orchestration import get_client

    limits = []
    with get_client(sync_client=True) as client:
        while True:  # the server gives at most 200 a page
            page = client.read_global_concurrency_limits(limit=200, offset=len(limits))
            limits += page
            if len(page) < 200:
                break
    limits = [limit for limit in limits if limit.name.startswith("gpu:") and limit.active]
    free = sum(max(limit.limit - limit.active_slots, 0) for limit in limits)
    total = sum(limit.limit for limit in limits)
    return free, total, max((limit.limit for limit in limits), default=0)


def dispatch_now(project_id: int | None = None) -> int:
    """Dispatch what fits now; returns how many chunks got a run."""
    from prefect.deployments import run_deployment

    _, database = context()
    free, total, largest = free_gpu_slots()
    with UnitOfWork(database) as uow:
        gpus = lifecycle.gpus_by_state(uow.session)
        # A chunk that has just started its command may not hold its slots on the server yet.
        free = min(free, total - gpus[lifecycle.RUNNING])
        # One chunk dispatched ahead per slot: its run starts (seconds: a new process) while
        # the host is busy and waits for its GPUs, so a freed slot is taken within a poll.
        free += total * DISPATCH_AHEAD - gpus[lifecycle.DISPATCHED]
        chosen = [
            chunk
            for chunk in lifecycle.choose(
                uow.session, free_gpus=free, largest_host=largest, project_id=project_id
            )
            if lifecycle.dispatch(uow.session, chunk)
        ]
        jobs = {job_id: job_view(uow.session, job_id) for job_id in {chunk.job_id for chunk in chosen}}
        uow.commit()
    for chunk in chosen:
        job = jobs[chunk.job_id]
        try:
            run = run_deployment(
                entry("render-chunk").deployment,
                parameters={
                    "actor": job.submitter,
                    "project": job.project,
                    "chunk": chunk.chunk_id,
                    "attempt": chunk.attempt,
                },
                timeout=0,
                work_queue_name=f"gpus-{chunk.gpus}",
                idempotency_key=f"render-chunk-{chunk.chunk_id}-{chunk.attempt}",
                tags=["bifrost", "render", project_tag(job.project), f"job:{job.id}"],
                as_subflow=False,
            )
        except Exception:
            with UnitOfWork(database) as uow:
                lifecycle.undispatch(uow.session, chunk.chunk_id, chunk.attempt)
                uow.commit()
            raise
        with UnitOfWork(database) as uow:
            lifecycle.dispatched_as(uow.session, chunk.chunk_id, chunk.attempt, str(run.id))
            uow.commit()
    for job in jobs.values():
        follow(job)
    return len(chosen)


def follow(job: JobView) -> None:
    """Start the job's `render` run unless one is following it already (a job retried after
    its run ended gets a new one). The idempotency key names the run it succeeds, so racing
    dispatchers start one run."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    if job.render_run_id is not None:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(job.render_run_id)).state
        if state is None or not state.is_final():
            return
    run = run_deployment(
        entry("render").deployment,
        parameters={"actor": job.submitter, "project": job.project, "job": job.id},
        timeout=0,
        idempotency_key=f"render-job-{job.id}-after-{job.render_run_id or 'submit'}",
        tags=["bifrost", "render", project_tag(job.project), f"job:{job.id}"],
        as_subflow=False,
    )
    _, database = context()
    with UnitOfWork(database) as uow:
        lifecycle.followed_by(uow.session, job.id, job.render_run_id, str(run.id))
        uow.commit()


def sweep() -> list[tuple[int, str]]:
    """End the attempts that died: running chunks whose heartbeat stopped, and dispatched
    chunks whose run ended (or was never made) without claiming them; chunks that died while
    waiting for their GPUs go back to pending."""
    from prefect.client.orchestration import get_client

    _, database = context()
    period = heartbeat_seconds()
    with UnitOfWork(database) as uow:
        swept = lifecycle.sweep_crashed(uow.session, period=period)
        waited = lifecycle.sweep_waiting(uow.session, period=period)
        swept += [(chunk_id, lifecycle.PENDING) for chunk_id in waited]
        stuck = lifecycle.stuck_dispatches(uow.session, older_than=timedelta(seconds=STALE_DISPATCH_SECONDS))
        uow.commit()
    ended: list[tuple[int, int, str]] = []
    if stuck:
        with get_client(sync_client=True) as client:
            for chunk_id, attempt, run_id, dispatched_at in stuck:
                if run_id is None:
                    # Its dispatcher died between marking it and creating its run.
                    if utcnow() - dispatched_at > timedelta(seconds=6 * STALE_DISPATCH_SECONDS):
                        ended.append((chunk_id, attempt, "its run was never created"))
                    continue
                run = client.read_flow_run(UUID(run_id))
                if run.state is not None and run.state.is_final():
                    ended.append((chunk_id, attempt, f"its run ended {run.state.name} before starting it"))
    if ended:
        with UnitOfWork(database) as uow:
            for chunk_id, attempt, why in ended:
                state = lifecycle.abandon(uow.session, chunk_id, attempt, error=why)
                if state is not None:
                    swept.append((chunk_id, state))
            uow.commit()
    return swept


@flow(name="render-queue", flow_run_name="render-queue")
def render_queue(actor: Actor, project: ProjectCode | None = None) -> dict[str, int]:
    """Dispatch render chunks while GPU slots are free, and retry those whose host died.

    Args:
        actor: Bifrost username the queue runs as (a service user on the schedule)
        project: Only this project's jobs (all projects when empty)
    """
    project_id = None
    if project is None:
        begin_studio("render-queue", actor)  # every project's jobs: an admin (the service user)
    else:
        begin("render-queue", actor, project)
        _, database = context()
        with UnitOfWork(database) as uow:
            project_id = active_project(uow.session, project).id
    swept = sweep()
    dispatched = dispatch_now(project_id)
    get_run_logger().info("render queue: %d crashed chunk(s) swept, %d dispatched", len(swept), dispatched)
    return {"swept": len(swept), "dispatched": dispatched}


# ---------------------------------------------------------------- one chunk


@flow(name="render-chunk", flow_run_name="render-chunk {chunk}.{attempt}")
def render_chunk(actor: Actor, project: ProjectCode, chunk: RecordId, attempt: RecordId) -> str:
    """Render one chunk of a render job on this GPU host.

    Args:
        actor: Bifrost username of the job's submitter
        project: Project code of the job
        chunk: Id of the chunk
        attempt: The attempt it was dispatched as (a chunk never runs twice at once)
    """
    begin("render-chunk", actor, project)
    logger = get_run_logger()
    host = os.environ.get("BIFROST_WORKER_HOST")
    gpus_here = int(os.environ.get("BIFROST_WORKER_GPUS", "0"))
    if not host or gpus_here < 1:
        raise RuntimeError("render-chunk runs on a `bifrost worker --gpus N` (BIFROST_WORKER_HOST unset)")
    settings, database = context()
    with UnitOfWork(database) as uow:
        work = chunk_work(uow.session, chunk)
    period = heartbeat_seconds()
    log_path = Path(work.output_dir) / "logs" / f"chunk-{work.index}.{attempt}.log"
    # The GPU ids (local flock'ed files) decide what runs on this host; the slots of the
    # host's limit `gpu:<host>` are taken once the command has started, not before it: a chunk
    # dispatched ahead (started while its host is busy) waits on the ids, freed the moment
    # the chunk before it has released its slots, so its own acquisition succeeds at once,
    # and a round trip to the server stays off the way from one command to the next.
    try:
        with execution.gpu_ids(
            execution.lock_root(settings.home),
            host,
            work.gpus,
            gpus_here,
            wait=None,
            wanted=lambda: _waiting(chunk, attempt),
            ask_every=period / 2,  # its heartbeat while it waits
        ) as gpu_ids:
            # A lease outlives a killed chunk by its duration: short, renewed in the background
            # (the server takes no less than 60 s).
            slots = HeldSlots(f"gpu:{host}", work.gpus, lease_seconds=max(60.0, 6 * period))
            try:
                with UnitOfWork(database) as uow:
                    claimed = lifecycle.claim(
                        uow.session, chunk, attempt, host=host, gpu_ids=gpu_ids, log_path=str(log_path)
                    )
                    uow.commit()
                if not claimed:
                    logger.info("chunk %d attempt %d is no longer this run's: nothing to do", chunk, attempt)
                    return "taken"
                outcome = execution.run(
                    work.argv,
                    env=_environment(work, gpu_ids),
                    log_path=log_path,
                    timeout=work.timeout_seconds,
                    # Stops the command when the chunk was taken away or its slots could not be had.
                    heartbeat=lambda: slots.error is None and _beat(chunk, attempt),
                    period=period,
                    started=lambda pid: slots.take(),
                )
                slots.give_back()  # meanwhile its end is recorded, before its GPUs are handed on
                error = None if outcome.succeeded else slots.error or outcome.describe()
                with UnitOfWork(database) as uow:
                    state = lifecycle.finish(
                        uow.session,
                        chunk,
                        attempt,
                        succeeded=outcome.succeeded,
                        exit_code=outcome.exit_code,
                        error=error,
                    )
                    uow.commit()
            finally:
                slots.release()  # before the ids: whoever takes them next finds the slots free
    except execution.ChunkNotWanted:
        # Cancelled, or handed to another run, while it waited for the host's GPUs.
        logger.info("chunk %d attempt %d is no longer wanted: nothing to do", chunk, attempt)
        return "taken"
    logger.info(
        "chunk %d attempt %d on %s GPUs %s: %s -> %s",
        chunk,
        attempt,
        host,
        gpu_ids,
        outcome.describe(),
        state,
    )
    dispatch_now()
    if not outcome.succeeded and (slots.error or not outcome.stopped):
        return Failed(message=f"chunk {work.index}: {error}")  # type: ignore[return-value]
    return state or "taken"


class HeldSlots:
    """`occupy` slots of a global concurrency limit, held from a thread between `take()` and
    `release()`: strict (a missing limit is an error) and leased (renewed in the background,
    so a killed holder's slots come back after `lease_seconds`). Waits, as Prefect does, while
    the limit is full; `error` says why they could not be held."""

    def __init__(self, name: str, occupy: int, *, lease_seconds: float) -> None:
        self.error: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots = (name, occupy, lease_seconds)

    def take(self) -> None:
        import contextvars

        context = contextvars.copy_context()  # the run's Prefect settings and logger
        self._thread = threading.Thread(target=context.run, args=(self._hold,), name="gpu-slots", daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        from prefect.concurrency.sync import concurrency

        name, occupy, lease_seconds = self._slots
        try:
            with concurrency(name, occupy=occupy, strict=True, lease_duration=lease_seconds):
                # Woken now and then: a failed lease renewal is raised in this thread.
                while not self._done.wait(1.0):
                    pass
        except BaseException as exc:  # reported through `error`: the chunk's command stops
            self.error = f"{name}: {type(exc).__name__}: {exc}"

    def give_back(self) -> None:
        """Start giving the slots back (once acquired)."""
        self._done.set()

    def release(self) -> None:
        """Give the slots back and wait until the server has them."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _waiting(chunk: int, attempt: int) -> bool:
    _, database = context()
    with UnitOfWork(database) as uow:
        wanted = lifecycle.waiting(uow.session, chunk, attempt)
        uow.commit()
    return wanted


def _beat(chunk: int, attempt: int) -> bool:
    _, database = context()
    with UnitOfWork(database) as uow:
        alive = lifecycle.heartbeat(uow.session, chunk, attempt)
        uow.commit()
    return alive


def _environment(work: ChunkWork, gpu_ids: list[int]) -> dict[str, str]:
    passed = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    return {**passed, **work.environment, "CUDA_VISIBLE_DEVICES": ",".join(str(gpu) for gpu in gpu_ids)}


# ---------------------------------------------------------------- one job


@flow(name="render", flow_run_name="render job {job}")
def render(actor: Actor, project: ProjectCode, job: RecordId) -> dict[str, Any] | State:
    """Follow a render job to its end: its progress, then its frames as a new version.

    Args:
        actor: Bifrost username of the job's submitter
        project: Project code of the job
        job: Id of the render job
    """
    checked = begin("render", actor, project)
    _, database = context()
    poll = min(2.0, heartbeat_seconds())
    artifact = create_progress_artifact(
        0.0, key=f"render-{project.lower()}-job-{job}", description=f"render job {job}"
    )
    while True:
        sweep()
        dispatch_now()
        with UnitOfWork(database) as uow:
            progress = lifecycle.progress(uow.session, job)
            ended = lifecycle.outcome(uow.session, job)
        done = 100.0 * progress.frames_done / progress.frame_count if progress.frame_count else 0.0
        update_progress_artifact(artifact, done)
        if ended is not None:
            break
        time.sleep(poll)
    if ended == lifecycle.CANCELLED:
        return {"job": job, "state": ended}
    if ended == lifecycle.FAILED:
        report = failure_report(job)
        create_markdown_artifact(
            report, key=f"render-{project.lower()}-job-{job}-report", description="failed chunks"
        )
        with UnitOfWork(database) as uow:
            lifecycle.end_job(uow.session, job, lifecycle.FAILED, report=report)
            uow.commit()
        return Failed(
            message=f"render job {job} failed: {progress.chunks.get(lifecycle.FAILED, 0)} chunk(s) failed"
        )
    return ingest_frames(job, checked)


def ingest_frames(job_id: int, actor: Any) -> dict[str, Any] | State:
    """The job's frames as a new version of its task (the publish machinery: stored by hash,
    registered), checked against the job's frame count, the job recorded on the version."""
    _, database = context()
    with UnitOfWork(database) as uow:
        job = job_view(uow.session, job_id)
    frames = sorted(
        str(path)
        for path in Path(job.output_dir).iterdir()
        if path.is_file() and not path.name.startswith(".")
    )
    try:
        if len(frames) != job.frame_count:
            raise InvalidInput(
                f"render job {job_id}: {len(frames)} frame file(s) written, {job.frame_count} expected"
            )
        request = PublishRequest(
            project=job.project,
            sequence=job.sequence,
            shot=job.shot,
            asset=job.asset,
            task=job.task,
            comment=f"render job {job_id}: {job.name}",
            files=frames,
            meta={"render_job": job_id},
        )
        plan = plan_publish(request)
        if not plan.pending:
            raise InvalidInput(f"render job {job_id}: its frames are already a version")
        rendered = plan.pending[0]
        if sum(len(rep.files) for rep in rendered.representations) != job.frame_count:
            raise InvalidInput(
                f"render job {job_id}: the frames do not form one sequence of {job.frame_count}"
            )
        summary = store_and_register(
            plan.project,
            plan.tier,
            plan.source,
            plan.pending,
            actor,
            label="frames",
            comment=request.comment,
            meta=request.meta,
        )
        if not summary.created:
            held = [held.reason for held in summary.held_back] + [p.message for p in summary.problems]
            why = held[0] if held else "the same frames are already a version of its task"
            raise InvalidInput(f"render job {job_id}: its frames made no new version: {why}")
        version_id = summary.created[0].version_id
    except InvalidInput as exc:
        return _job_failed(job_id, str(exc))
    except Exception as exc:
        # Whatever went wrong, the job must not stay running with nothing left to end it.
        _job_failed(job_id, f"render job {job_id}: publishing its frames failed: {type(exc).__name__}: {exc}")
        raise
    with UnitOfWork(database) as uow:
        record_version(uow.session, job_id, version_id)
        lifecycle.end_job(uow.session, job_id, lifecycle.COMPLETED, version_id=version_id)
        uow.commit()
    return {"job": job_id, "state": lifecycle.COMPLETED, "version_id": version_id, "frames": job.frame_count}


def _job_failed(job_id: int, report: str) -> State:
    _, database = context()
    with UnitOfWork(database) as uow:
        lifecycle.end_job(uow.session, job_id, lifecycle.FAILED, report=report)
        uow.commit()
    return Failed(message=report)


def failure_report(job_id: int) -> str:
    """Markdown: each failed chunk, its exit code or error, the last lines of its log."""
    _, database = context()
    with UnitOfWork(database) as uow:
        failed = failed_chunks(uow.session, job_id)
    parts = [f"# Render job {job_id} failed\n", f"{len(failed)} chunk(s) failed after their retries.\n"]
    for chunk in failed:
        lines = execution.last_lines(chunk.log_path, LOG_LINES)
        parts.append(
            f"## chunk {chunk.index} (frames {escape_markdown(chunk.frames)})\n\n"
            f"attempts {chunk.attempts}, host {escape_markdown(chunk.host or '-')}, "
            f"exit code {chunk.exit_code}, {escape_markdown(chunk.error or '')}\n\n"
            f"log {escape_markdown(chunk.log_path or '-')}, last {len(lines)} line(s):\n\n"
            "```\n" + "\n".join(line.replace("```", "'''") for line in lines) + "\n```\n"
        )
    return "\n".join(parts)
