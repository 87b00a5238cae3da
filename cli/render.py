"""`bifrost render`: submit render jobs to the farm, follow them, cancel and retry them.

    bifrost render submit PRJ --shot SQ010/SH010 --task lighting --frames 1001-1100 \\
        --chunk-size 10 --scene shot.blend -- blender -b {scene} -o {output} -s {first} -e {last} -a

The command is everything after `--`, kept as a list of arguments (no shell). Submitting
checks the job in full (exit 5 and one line on bad input, nothing recorded) and records it;
the farm's render-queue deployment starts it. `--wait` follows it with a progress bar of
frames done, exiting 0 when it completes and 1 with its report when it fails or is cancelled.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import unit_of_work
from cli.errors import EXIT_UNEXPECTED
from cli.output import JsonOption, cell, done, print_json, render_list, say, say_lines

if TYPE_CHECKING:
    from bifrost_core.render.schemas import RenderJobDetail

app = typer.Typer(help="Render jobs: frames rendered on the GPU farm, in chunks.", no_args_is_help=True)

JobArg = Annotated[int, typer.Argument(help="Render job id", min=1, max=2**63 - 1)]
# How often `--wait` reads the job's records.
POLL_SECONDS = 1.0
# Ctrl-C while following a job: the shell's code for SIGINT.
EXIT_INTERRUPTED = 130


def _environment(pairs: list[str]) -> dict[str, str]:
    from bifrost_core.errors import InvalidInput

    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--env {pair!r}: expected NAME=VALUE")
        found[name] = value
    return found


@app.command("submit")
def submit(
    project: Annotated[str, typer.Argument(help="Project code")],
    task: Annotated[str, typer.Option(help="Task name on the shot or asset")],
    frames: Annotated[str, typer.Option(help="Frame set: 1001-1100, 1-100x2, 1,5,10-20")],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After --: the program and its arguments, with placeholders {scene} {output} "
            "{output_dir} {first} {last} {step} {frames} {chunk} {job}",
            show_default=False,
        ),
    ] = None,
    shot: Annotated[str | None, typer.Option(help="The shot, as SEQUENCE/SHOT")] = None,
    asset: Annotated[str | None, typer.Option(help="The asset, by its code")] = None,
    chunk_size: Annotated[int, typer.Option(help="Frames per chunk at most")] = 10,
    priority: Annotated[int, typer.Option(help="0-100, higher runs first")] = 50,
    gpus: Annotated[int, typer.Option(help="GPUs per chunk")] = 1,
    timeout: Annotated[int, typer.Option(help="Seconds a chunk attempt may run")] = 3600,
    retries: Annotated[int, typer.Option(help="Extra attempts of a failed chunk")] = 2,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE for the command; repeatable")] = None,
    scene: Annotated[str | None, typer.Option(help="Scene file ({scene}); relative to here")] = None,
    name: Annotated[str | None, typer.Option(help="Job name, also the frames' file name")] = None,
    pool: Annotated[str, typer.Option(help="Work pool")] = "bifrost-gpu",
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it finishes")] = False,
    as_json: bool = JsonOption,
) -> None:
    """Submit a render job of a shot's or an asset's task."""
    from pathlib import Path

    from bifrost_core.codes import project_by_code, task_by_ref
    from bifrost_core.errors import InvalidInput
    from bifrost_core.render import service
    from bifrost_core.render.schemas import RenderJobCreate, RenderJobRead
    from cli.common import settings

    if (shot is None) == (asset is None):
        raise InvalidInput("give the shot (--shot SEQUENCE/SHOT) or the asset (--asset CODE), one of them")
    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        task_row = task_by_ref(uow.session, uow.actor, project_row.id, shot or asset, task)  # type: ignore[arg-type]
        data = RenderJobCreate(
            task_id=task_row.id,
            name=name,
            command=command or [],
            frames=frames,
            chunk_size=chunk_size,
            priority=priority,
            gpus_per_chunk=gpus,
            timeout_seconds=timeout,
            retries=retries,
            environment=_environment(env or []),
            scene=None if scene is None else str(Path(scene).absolute()),
            pool=pool,
        )
        job = service.submit(
            uow.session,
            actor=uow.actor,
            project_id=project_row.id,
            data=data,
            gpu_hosts=_gpu_hosts,
            render_root=settings().render_output_root,
        )
        uow.commit()
        read = RenderJobRead.model_validate(job)
        chunks = service.progress_of(uow.session, [job])[job.id].chunks_total
        submitter, code = uow.actor.username, project_row.code
    _nudge(submitter, code, quiet=as_json)
    if not wait:
        if as_json:
            print_json(read.model_dump(mode="json"))
        else:
            done(f"submitted render job {read.id}: {read.frame_count} frames in {chunks} chunks")
        return
    _follow(read.id, as_json=as_json)


def _nudge(username: str, project: str, *, quiet: bool) -> None:
    """A render-queue pass over the project now, so the job starts within seconds (when
    Prefect refuses, its scheduled pass starts it: a warning, not a failure; none in --json
    output, which is only the job)."""
    from deployments.render import nudge

    try:
        nudge(username, project)
    except Exception as exc:
        if not quiet:
            say(
                f"warning: the render queue was not nudged ({type(exc).__name__}: {exc}); "
                "its next pass starts the job",
                err=True,
            )


def _gpu_hosts() -> dict[str, int]:
    """The registered GPU hosts, asked once the rest of the job is known to be good."""
    from cli.flows import persistent_server
    from deployments.render import gpu_hosts

    persistent_server()
    return gpu_hosts()


def _detail(job_id: int) -> RenderJobDetail:
    from bifrost_core.render import service

    with unit_of_work() as uow:
        return service.job_detail(uow.session, actor=uow.actor, job_id=job_id)


def _follow(job_id: int, *, as_json: bool) -> None:
    """Poll the job's records until it finishes, with a progress bar of frames done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bifrost_core.render.models import JOB_FINISHED

    detail = _detail(job_id)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        disable=as_json,
        transient=False,
    ) as bar:
        frames = bar.add_task(f"job {job_id} {detail.state}", total=detail.frame_count)
        try:
            while True:
                bar.update(
                    frames, completed=detail.progress.frames_done, description=f"job {job_id} {detail.state}"
                )
                if detail.state in JOB_FINISHED:
                    break
                time.sleep(POLL_SECONDS)
                detail = _detail(job_id)
        except KeyboardInterrupt:
            # Only the following stops: the job is the farm's.
            say(
                f"stopped following render job {job_id}, which goes on (bifrost render show {job_id})",
                err=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        print_json(detail.model_dump(mode="json"))
    if detail.state == "completed":
        if not as_json:
            version = f" as version {detail.version_id}" if detail.version_id else ""
            done(f"render job {job_id} completed: {detail.frame_count} frames{version}")
        return
    if not as_json:
        say(f"error: render job {job_id} {detail.state}", err=True)
        if detail.report:
            say_lines(detail.report, err=True)
    raise typer.Exit(EXIT_UNEXPECTED)


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    state: Annotated[str | None, typer.Option(help="Only jobs in this state")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List a project's render jobs with their progress."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.db.repository import MAX_PAGE
    from bifrost_core.render import service
    from bifrost_core.render.schemas import RenderJobRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        jobs: list[Any] = []
        while True:  # every page
            page = service.list_jobs(
                uow.session,
                actor=uow.actor,
                project_id=project_row.id,
                state=state,
                after=jobs[-1].id if jobs else None,
                limit=MAX_PAGE,
            )
            jobs += page
            if len(page) < MAX_PAGE:
                break
        progress = service.progress_of(uow.session, jobs)
        rows = [
            {
                **RenderJobRead.model_validate(job).model_dump(mode="json"),
                "progress": progress[job.id].model_dump(),
            }
            for job in jobs
        ]
    render_list(
        rows,
        None,
        [
            ("id", lambda r: r["id"]),
            ("name", lambda r: r["name"]),
            ("state", lambda r: r["state"]),
            ("frames", lambda r: r["frames"]),
            ("done", lambda r: f"{r['progress']['frames_done']}/{r['frame_count']}"),
            ("chunks", lambda r: _chunk_summary(r["progress"]["chunks"])),
            ("priority", lambda r: r["priority"]),
        ],
        as_json=as_json,
        title=f"Render jobs of {project}",
    )


def _chunk_summary(chunks: dict[str, int]) -> str:
    return " ".join(f"{state} {count}" for state, count in chunks.items() if count)


@app.command("show")
def show(job_id: JobArg, as_json: bool = JsonOption) -> None:
    """Show a render job, its progress and every chunk."""
    detail = _detail(job_id)
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=cell(f"Render job {detail.id} {detail.name}"), show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    progress = detail.progress
    for key, value in (
        ("state", detail.state),
        ("frames", f"{detail.frames} ({progress.frames_done}/{progress.frames_total} done)"),
        ("chunks", f"{progress.chunks_total}: {_chunk_summary(progress.chunks)}"),
        ("command", " ".join(detail.command)),
        ("scene", detail.scene),
        ("output", detail.output_dir),
        ("priority / gpus", f"{detail.priority} / {detail.gpus_per_chunk} per chunk"),
        ("version", detail.version_id),
        ("report", detail.report),
    ):
        summary.add_row(cell(key), cell(value))
    console.print(summary)
    table = Table(title="Chunks")
    for column in ("#", "frames", "state", "attempts", "host", "gpus", "started", "finished", "exit", "log"):
        table.add_column(column, overflow="fold")
    for chunk in detail.chunks:
        table.add_row(
            *(
                cell(value)
                for value in (
                    chunk.index,
                    chunk.frames,
                    chunk.state,
                    chunk.attempts,
                    chunk.host,
                    chunk.gpu_ids,
                    _time(chunk.started_at),
                    _time(chunk.finished_at),
                    chunk.exit_code,
                    chunk.log_path,
                )
            )
        )
    console.print(table)


def _time(value: Any) -> str | None:
    return None if value is None else value.strftime("%H:%M:%S")


@app.command("cancel")
def cancel(job_id: JobArg, as_json: bool = JsonOption) -> None:
    """Cancel a render job: pending chunks never start, running ones are stopped."""
    _change(job_id, "cancel", as_json)


@app.command("retry-failed")
def retry_failed(job_id: JobArg, as_json: bool = JsonOption) -> None:
    """Run a job's failed chunks again, with their attempts reset."""
    _change(job_id, "retry_failed", as_json)


def _change(job_id: int, action: str, as_json: bool) -> None:
    from bifrost_core.render import service
    from bifrost_core.render.schemas import RenderJobRead

    with unit_of_work() as uow:
        job = getattr(service, action)(uow.session, actor=uow.actor, job_id=job_id)
        uow.commit()
        read = RenderJobRead.model_validate(job)
    if as_json:
        print_json(read.model_dump(mode="json"))
    else:
        done(f"render job {job_id} is {read.state}")
