"""`bifrost archive`: storage tiering by policy, and restores.

    bifrost archive policy set DEMO --keep-latest 3 --unapproved-older-than 60
    bifrost archive run --project DEMO --dry-run     what would move, bytes per tier
    bifrost archive run                              every project with a policy
    bifrost archive restore --version 42             (or --shot SQ010/SH010 -p DEMO, --playlist 7)
    bifrost archive final SQ010/SH010 -p DEMO        mark a shot final (its own rule)

Moves and restores run here, in this process (bifrost_core/lifecycle/moves.py, restores.py); the
`archive`, `archive-all` and `archive-restore` flows run the same on workers. A restore from
a cold tier (BIFROST_TIER_RESTORE_DELAYS) prints when it will be ready and exits 4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import open_database, operator, settings, unit_of_work
from cli.errors import EXIT_CONFLICT, EXIT_USAGE, fail
from cli.output import JsonOption, cell, done, print_json, say

if TYPE_CHECKING:
    from bifrost_core.lifecycle.moves import ArchiveReport
    from bifrost_core.lifecycle.restores import RestoreReport

app = typer.Typer(no_args_is_help=True, help="Storage tiering: archive policies, moves and restores.")
policy_app = typer.Typer(no_args_is_help=True, help="A project's archive policy.")
app.add_typer(policy_app, name="policy")

ProjectArg = Annotated[str, typer.Argument(help="Project code")]


def _policy_json(read: Any) -> dict[str, Any]:
    return {"project": read.project, "rules": read.rules.model_dump(), "updated_at": read.updated_at}


def _print_policy(read: Any, as_json: bool) -> None:
    if as_json:
        print_json(_policy_json(read))
        return
    rules = read.rules
    say(f"archive policy of {read.project} (to tier {rules.tier}):")
    chosen = [
        f"versions not approved after {rules.unapproved_older_than_days} days"
        if rules.unapproved_older_than_days is not None
        else None,
        f"all but the latest {rules.keep_latest} versions of each task and variant"
        if rules.keep_latest is not None
        else None,
        "every version once the project is closed" if rules.closed_project else None,
        f"every version of a shot {rules.final_shot_after_days} days after it is marked final"
        if rules.final_shot_after_days is not None
        else None,
    ]
    for line in [line for line in chosen if line] or ["nothing (no rule set)"]:
        say(f"  - {line}")
    say(f"  restored versions stay hot {rules.restored_hold_days} days")


@policy_app.command("show")
def policy_show(project: ProjectArg, as_json: bool = JsonOption) -> None:
    """Show a project's archive policy."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.lifecycle import policies

    with unit_of_work() as uow:
        found = project_by_code(uow.session, uow.actor, project)
        _print_policy(policies.get_policy(uow.session, actor=uow.actor, project_id=found.id), as_json)


@policy_app.command("set")
def policy_set(
    project: ProjectArg,
    unapproved_older_than: Annotated[
        int | None, typer.Option("--unapproved-older-than", help="Versions not approved after N days")
    ] = None,
    keep_latest: Annotated[
        int | None, typer.Option("--keep-latest", help="Keep the latest K versions of each task and variant")
    ] = None,
    closed_project: Annotated[
        bool, typer.Option("--closed-project", help="Every version once the project is closed")
    ] = False,
    final_shot_after: Annotated[
        int | None, typer.Option("--final-shot-after", help="Shots marked final N days ago")
    ] = None,
    tier: Annotated[str, typer.Option("--tier", help="The project's archive tier")] = "archive",
    hold_days: Annotated[int, typer.Option("--hold-days", help="A restored version stays hot N days")] = 14,
    as_json: bool = JsonOption,
) -> None:
    """Replace a project's archive policy (no rule: archive nothing). Checked when set."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.lifecycle import policies

    rules = policies.parse_rules(
        {
            "unapproved_older_than_days": unapproved_older_than,
            "keep_latest": keep_latest,
            "closed_project": closed_project,
            "final_shot_after_days": final_shot_after,
            "tier": tier,
            "restored_hold_days": hold_days,
        }
    )
    with unit_of_work() as uow:
        found = project_by_code(uow.session, uow.actor, project)
        read = policies.set_policy(uow.session, settings(), actor=uow.actor, project_id=found.id, rules=rules)
        uow.commit()
    _print_policy(read, as_json)


@app.command()
def final(
    shot: Annotated[str, typer.Argument(help="The shot as SEQUENCE/SHOT")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project code")],
    unset: Annotated[bool, typer.Option("--unset", help="The shot is no longer final")] = False,
) -> None:
    """Mark a shot final (delivered): the policy's --final-shot-after counts from now."""
    from bifrost_core.codes import project_by_code, shot_by_code
    from bifrost_core.lifecycle import policies

    sequence, _, code = shot.partition("/")
    if not sequence or not code:
        raise fail(f"{shot!r}: name the shot as SEQUENCE/SHOT", EXIT_USAGE)
    with unit_of_work() as uow:
        found = project_by_code(uow.session, uow.actor, project)
        target = shot_by_code(uow.session, uow.actor, found.id, sequence, code)
        policies.mark_final(uow.session, actor=uow.actor, shot=target, final=not unset)
        uow.commit()
    done(f"shot {project}/{shot} {'is no longer' if unset else 'marked'} final")


@app.command()
def run(
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Only this project (default: every one with a policy)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would move")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Archive even when the policy selects every hot version (--project)"),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Move the versions each policy selects to its archive tier: copy, read back and verify,
    record, then remove the hot copy (a blob a hot version shares stays hot)."""
    from bifrost_core.lifecycle import moves

    if force and project is None:
        raise fail("--force archives one project at a time: name it with --project", EXIT_USAGE)
    config = settings()
    database = open_database()
    try:
        actor = operator(database)
        if project is None:
            reports = moves.archive_all(database, config, actor=actor, dry_run=dry_run)
        else:
            reports = [
                moves.archive_project(
                    database, config, actor=actor, project=project, dry_run=dry_run, force=force
                )
            ]
    finally:
        database.dispose()
    if as_json:
        print_json([_report_json(report) for report in reports])
    else:
        _print_reports(reports, dry_run)
    failures = [failure for report in reports for failure in report.failures]
    for failure in failures:
        say(f"NOT MOVED: {failure}", err=True)
    if failures:
        raise typer.Exit(9)


def _report_json(report: ArchiveReport) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(report)


def _print_reports(reports: list[ArchiveReport], dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    if not reports:
        say("no project has an archive policy that selects anything")
    verb = "would move" if dry_run else "moved"
    for report in reports:
        if report.skipped:
            say(f"{report.project}: skipped: {report.skipped}")
            continue
        say(f"{report.project}: {len(report.versions)} version(s) {verb} to {report.tier}")
        table = Table()
        for header in ("tier", "bytes in", "bytes freed"):
            table.add_column(header, justify="left" if header == "tier" else "right")
        for tier in report.tiers:
            table.add_row(cell(tier.tier), f"{tier.added:,}", f"{tier.freed:,}")
        Console().print(table)
        if report.versions:
            say("versions: " + ", ".join(f"{m.version_id} ({m.rule})" for m in report.versions))
        if report.shared_kept_hot:
            say(f"{report.shared_kept_hot} blob(s) shared with hot versions stay hot")


@app.command()
def restore(
    version: Annotated[
        list[int] | None, typer.Option("--version", min=1, help="A version id (repeatable)")
    ] = None,
    shot: Annotated[
        str | None, typer.Option("--shot", help="Every version of SEQUENCE/SHOT (with -p)")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project code (with --shot)")] = None,
    playlist: Annotated[
        int | None, typer.Option("--playlist", min=1, help="Every version of a playlist")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Bring archived versions back to the hot tier, verified. Exit 4 while a cold tier
    prepares them (the message says when they will be ready), 9 if a blob's only copy is
    damaged (the message names it)."""
    from bifrost_core.lifecycle import restores

    if sum(given is not None for given in (version or None, shot, playlist)) != 1:
        raise fail(
            "name what to restore: --version (repeatable), --shot with --project, or --playlist", EXIT_USAGE
        )
    if shot is not None and (project is None or "/" not in shot):
        raise fail("--shot takes SEQUENCE/SHOT, with --project", EXIT_USAGE)
    config = settings()
    database = open_database()
    try:
        actor = operator(database)
        if shot is not None and project is not None:
            sequence, _, code = shot.partition("/")
            ids = restores.versions_of_shot(database, actor, project, sequence, code)
        elif playlist is not None:
            ids = restores.versions_of_playlist(database, actor, playlist)
        else:
            ids = list(version or [])
        report = restores.restore_versions(database, config, actor=actor, version_ids=ids)
    finally:
        database.dispose()
    _print_restore(report, as_json)
    if report.pending:
        say(f"restoring: {restores.pending_message(report)}", err=True)
        raise typer.Exit(EXIT_CONFLICT)


def _print_restore(report: RestoreReport, as_json: bool) -> None:
    if as_json:
        print_json([vars(outcome) for outcome in report.outcomes])
        return
    if not report.outcomes:
        say("no version to restore")
    for o in report.outcomes:
        if o.state == "restored":
            say(f"version {o.version_id}: restored from {o.tier} ({o.blobs} blob(s), {o.bytes:,} bytes)")
        elif o.state == "hot":
            say(f"version {o.version_id}: already hot")
