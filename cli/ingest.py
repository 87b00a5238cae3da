"""`bifrost ingest` and `bifrost publish`: run the ingest and publish flows from the shell.

On the embedded default the flow runs in this process against a Prefect server that lives
as long as the command (its database under BIFROST_HOME/prefect; it takes several seconds
to start, while this process imports what the flow needs); with PREFECT_API_URL set the
run is recorded by that server and shows in its UI. Prefect is imported only inside these
commands, so `bifrost --help` stays fast.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import flow_actor, open_database, settings
from cli.errors import EXIT_INVALID, EXIT_UNAVAILABLE
from cli.output import JsonOption, cell, print_json, say

if TYPE_CHECKING:
    from bifrost_core.ingest.schemas import IngestSummary
    from deployments.local_server import ServerProcess


# Where `prefect server start` listens by default: used when it answers and PREFECT_API_URL is unset.
LOCAL_PREFECT = "http://127.0.0.1:4200/api"
EPHEMERAL_OFF = [
    "PREFECT_SERVER_UI_ENABLED",
    *(
        f"PREFECT_SERVER_SERVICES_{service}_ENABLED"
        for service in (
            "SCHEDULER",
            "LATE_RUNS",
            "FOREMAN",
            "TRIGGERS",
            "PAUSE_EXPIRATIONS",
            "REPOSSESSOR",
            "CANCELLATION_CLEANUP",
            "CLEANUP_RECONCILER",
        )
    ),
]


def prefect_env() -> ServerProcess | None:
    """Choose the Prefect server before Prefect is imported.

    PREFECT_API_URL set: that server. Otherwise a local server on the default port, when
    one answers (about 2 s to start a run). Otherwise a server for this command alone, with
    its database under BIFROST_HOME/prefect (see tasks/__init__.py): it is started now and
    returned, for `server_ready` once the flow's modules are imported (the two overlap:
    ~12 s -> ~7 s for a one-file ingest), and stopped when the command exits.
    Prefect's console logs are off unless BIFROST_DEBUG=1 or the operator chose a level:
    the command reports every outcome itself (a summary, problems, or one error line),
    where Prefect would print each expected failure with its traceback, once per run and
    per task, and tear through the progress bar (its server still gets every log).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    quiet = "WARNING" if os.environ.get("BIFROST_DEBUG") == "1" else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", quiet)
    if os.environ.get("PREFECT_API_URL"):
        return None
    if _answers(f"{LOCAL_PREFECT}/health"):
        os.environ["PREFECT_API_URL"] = LOCAL_PREFECT
        return None
    import tasks  # noqa: F401  (puts PREFECT_HOME inside BIFROST_HOME)
    from deployments.local_server import ephemeral_server

    # No UI to serve, and no scheduler or other loop services (they only slow start-up down).
    server = ephemeral_server(
        Path(os.environ["PREFECT_HOME"]), {**{name: "false" for name in EPHEMERAL_OFF}, **os.environ}
    )
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def server_ready(server: ServerProcess | None) -> None:
    """Wait for the command's own Prefect server, if it has one; a one-line error if it fails."""
    if server is None:
        return
    from deployments.local_server import ServerDidNotStart

    try:
        server.wait_ready()
    except ServerDidNotStart as exc:
        say(f"error: cannot start the embedded Prefect server: {exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.3) as response:
            return response.status == 200
    except OSError:
        return False


class _Bar:
    """A rich progress bar fed by bifrost_core.ingest.progress (files, bytes, rate, ETA)."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[files_total]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("starting Prefect", total=None, files=0, files_total="?")
        self.files = 0

    def total(self, files: int, size: int) -> None:
        self.progress.update(
            self.task, description="storing", total=max(size, 1), completed=0, files_total=files
        )

    def advance(self, files: int, size: int) -> None:
        self.files += files
        self.progress.update(self.task, advance=size, files=self.files)

    def __enter__(self) -> _Bar:
        from bifrost_core.ingest import progress

        progress.listen(self)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from bifrost_core.ingest import progress

        progress.forget(self)
        self.progress.stop()


def _report(summary: IngestSummary, *, as_json: bool) -> None:
    if as_json:
        print_json(summary.model_dump(mode="json", exclude={"plan"} if not summary.dry_run else set()))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        kind = "Plan" if summary.dry_run else "Ingest"
        table = Table(title=cell(f"{kind} of {summary.source} into {summary.project}"))
        for header in ("version", "status", "number", "files", "bytes"):
            table.add_column(header, justify="right" if header in ("number", "files", "bytes") else "left")
        if summary.dry_run and summary.plan is not None:
            for version in summary.plan.versions:
                missing = f", {version.missing} blob(s) missing" if version.missing else ""
                table.add_row(
                    cell(version.target.label),
                    version.status + missing,
                    str(version.version_number or ""),
                    str(len(version.files)),
                    f"{version.size:,}",
                )
        else:
            for created in summary.created:
                number, files = str(created.number), str(created.files)
                table.add_row(cell(created.target), "created", number, files, f"{created.size:,}")
        console.print(table)
        console.print(
            f"new {summary.planned_new}, changed {summary.planned_changed}, "
            f"already ingested {summary.known}, created {len(summary.created)}; "
            f"copied {summary.files_copied} file(s), {summary.bytes_copied:,} bytes; "
            f"repaired {summary.blobs_repaired} stored blob(s); "
            f"unmatched {len(summary.unmatched)}, problems {len(summary.problems)}, "
            f"held back {len(summary.held_back)}",
            markup=False,
            highlight=False,
        )
        for item in summary.unmatched:
            console.print(cell(f"unmatched: {item.path}: {item.message}"), highlight=False)
    # Each version held back, with why; then the problems that held nothing back.
    reasons = {(problem.path, problem.message) for held in summary.held_back for problem in held.problems}
    for held in summary.held_back:
        say(f"held back: {held.target}: {held.reason}", err=True)
    for item in summary.problems:
        if (item.path, item.message) not in reasons:
            say(f"problem: {item.path}: {item.message}", err=True)
    if summary.problems or summary.held_back:
        raise typer.Exit(EXIT_INVALID)


def _preflight(project: str, tier: str, action: str) -> str:
    """What the flow would refuse, checked before Prefect starts: the operator may start it
    (else one line and exit 6) and the tier's root exists and takes writes (else exit 7).
    Returns the operator's username, the run's actor; the flow checks both again where it
    runs. The embedded default migrates itself here, before any flow starts."""
    from bifrost_core.ingest.planning import check_destination

    database = open_database()
    try:
        username = flow_actor(database, project, action)
        check_destination(database, settings(), project=project, tier=tier)
        return username
    finally:
        database.dispose()


def ingest(
    path: Path = typer.Argument(..., help="Folder of the delivery"),
    project: str = typer.Option(..., "--project", "-p", help="Project code"),
    tier: str = typer.Option("hot", "--tier", help="Storage tier to store into"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only plan: show what would be created"),
    as_json: bool = JsonOption,
) -> None:
    """Ingest a delivery: match its files to shots/assets and tasks, store them, register versions.

    Exit code 5 when some files could not be ingested (each is listed, with the versions
    they held back) or nothing matched the naming rules; 7 when the tier's root does not
    exist or refuses writes. Rerunning is safe.
    """
    if not path.is_dir():
        from bifrost_core.errors import InvalidInput

        raise InvalidInput(f"{path} is not a folder")
    actor = _preflight(project, tier, "flows.ingest")
    server = prefect_env()
    from flows.ingest import IngestParameters
    from flows.ingest import ingest as ingest_flow

    server_ready(server)

    params = IngestParameters(
        project=project, source=str(path.resolve()), tier=tier, dry_run=dry_run, actor=actor
    )
    with _Bar(enabled=not as_json and not dry_run):
        summary = ingest_flow(params)
    _report(summary, as_json=as_json)


def publish(
    files: list[Path] = typer.Argument(..., help="Files, or the frames of an image sequence"),
    project: str = typer.Option(..., "--project", "-p", help="Project code"),
    shot: str | None = typer.Option(None, "--shot", help="SEQUENCE/SHOT, e.g. SQ010/SH010"),
    asset: str | None = typer.Option(None, "--asset", help="Asset code (instead of --shot)"),
    task: str = typer.Option(..., "--task", help="Task name (created on the shot or asset if missing)"),
    variant: str = typer.Option("main", "--variant"),
    comment: str = typer.Option("", "--comment", "-m"),
    frame_in: int | None = typer.Option(None, "--frame-in", help="Expected first frame (checked)"),
    frame_out: int | None = typer.Option(None, "--frame-out", help="Expected last frame (checked)"),
    tier: str = typer.Option("hot", "--tier"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only plan"),
    as_json: bool = JsonOption,
) -> None:
    """Publish one version of a shot's or an asset's task from files (an artist's or a DCC's output)."""
    from bifrost_core.ingest.schemas import PublishRequest

    if (shot is None) == (asset is None):
        raise typer.BadParameter("give either --shot SEQUENCE/SHOT or --asset CODE")
    sequence = shot_code = None
    if shot is not None:
        sequence, _, shot_code = shot.partition("/")
        if not sequence or not shot_code:
            raise typer.BadParameter(f"{shot!r} is not SEQUENCE/SHOT", param_hint="--shot")
    request = PublishRequest(
        actor=_preflight(project, tier, "flows.publish"),
        project=project,
        sequence=sequence,
        shot=shot_code,
        asset=asset,
        task=task,
        variant=variant,
        comment=comment,
        files=[str(file.absolute()) for file in files],
        frame_in=frame_in,
        frame_out=frame_out,
        tier=tier,
        dry_run=dry_run,
    )
    server = prefect_env()
    from flows.publish import publish as publish_flow

    server_ready(server)

    with _Bar(enabled=not as_json and not dry_run):
        summary = publish_flow(request)
    _report(summary, as_json=as_json)
