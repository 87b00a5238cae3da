"""`bifrost ingest` and `bifrost publish`: the ingest and publish flows run from the shell.

Thin wrappers of `bifrost flow run ingest|publish` (cli/flows.py: where the flow runs and
against which Prefect server) with options of their own, a check of the storage tier
before Prefect starts, and a table of what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import settings
from cli.errors import EXIT_INVALID
from cli.flows import preflight, run_locally
from cli.output import JsonOption, cell, print_json, say
from cli.runner import through_runner

if TYPE_CHECKING:
    from bifrost_core.db.database import Database
    from bifrost_core.ingest.schemas import IngestSummary


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


def _tier_check(project: str, tier: str) -> Callable[[Database], None]:
    """The tier's root exists and takes writes (else exit 7), before Prefect starts."""

    def check(database: Database) -> None:
        from bifrost_core.ingest.planning import check_destination

        check_destination(database, settings(), project=project, tier=tier)

    return check


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
    through_runner()
    if not path.is_dir():
        from bifrost_core.errors import InvalidInput

        raise InvalidInput(f"{path} is not a folder")
    from flows.registry import FLOWS

    flow_entry = FLOWS["ingest"]
    actor = preflight(flow_entry, project, _tier_check(project, tier))
    given = {"source": str(path.resolve()), "tier": tier, "dry_run": dry_run}
    summary = run_locally(flow_entry, actor, project, given, bar=not as_json and not dry_run)
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
    through_runner()
    if (shot is None) == (asset is None):
        raise typer.BadParameter("give either --shot SEQUENCE/SHOT or --asset CODE")
    sequence = shot_code = None
    if shot is not None:
        sequence, _, shot_code = shot.partition("/")
        if not sequence or not shot_code:
            raise typer.BadParameter(f"{shot!r} is not SEQUENCE/SHOT", param_hint="--shot")
    given = {
        "sequence": sequence,
        "shot": shot_code,
        "asset": asset,
        "task": task,
        "variant": variant,
        "comment": comment,
        "files": [str(file.absolute()) for file in files],
        "frame_in": frame_in,
        "frame_out": frame_out,
        "tier": tier,
        "dry_run": dry_run,
    }
    from flows.registry import FLOWS

    flow_entry = FLOWS["publish"]
    actor = preflight(flow_entry, project, _tier_check(project, tier))
    summary = run_locally(flow_entry, actor, project, given, bar=not as_json and not dry_run)
    _report(summary, as_json=as_json)
