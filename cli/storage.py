"""`bifrost verify` and `bifrost storage gc|du`: checking and tidying stored content."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cli.common import open_database, operator, settings
from cli.output import JsonOption, cell, print_json, say

if TYPE_CHECKING:
    from bifrost_core.db.database import Database
    from bifrost_core.replication.service import ReplicaLag

app = typer.Typer(no_args_is_help=True, help="Stored content: garbage collection, usage and replicas.")

EXIT_DAMAGED = 9


def _open_database() -> Database:
    """The database, once the operator is known: upkeep records no author, yet the CLI
    never runs anonymously (an unknown user is exit 6 here too)."""
    database = open_database()
    try:
        operator(database)
    except BaseException:
        database.dispose()
        raise
    return database


def verify(
    sample: int | None = typer.Option(None, "--sample", min=1, help="Rehash only N random blobs"),
    tier: str | None = typer.Option(None, "--tier", help="Only blobs in this tier"),
    as_json: bool = JsonOption,
) -> None:
    """Rehash stored blobs and report corrupt or missing ones (exit code 9 if any)."""
    from bifrost_core.ingest import upkeep

    config = settings()
    database = _open_database()
    try:
        report = upkeep.verify(database, config, sample=sample, tier=tier)
    finally:
        database.dispose()
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "copies_checked": report.copies_checked,
                "findings": [vars(finding) for finding in report.findings],
                "unreachable": report.unreachable,
                "replication": [vars(lag) for lag in report.replication],
            }
        )
    else:
        for finding in report.findings:
            where = finding.tier if finding.replica is None else f"{finding.tier} replica {finding.replica}"
            say(
                f"{finding.problem.split(' ')[0].upper()}: blob {finding.hash} in {where} "
                f"at {finding.url}: {finding.problem}",
                err=True,
            )
        for problem in report.unreachable:
            say(f"UNREACHABLE: {problem}", err=True)
        copies = f" and {report.copies_checked} replica copies" if report.replication else ""
        typer.echo(f"verified {report.checked} blob location(s){copies}: {len(report.findings)} damaged")
        for line in _lag_lines(report.replication):
            say(line)
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)


@app.command()
def gc(
    grace_hours: float = typer.Option(24.0, "--grace-hours", min=0, help="Keep anything younger than this"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed"),
    as_json: bool = JsonOption,
) -> None:
    """Remove blobs no version points to, and unrecorded copies left by crashed ingests.

    A blob a running ingest has leased is kept; so is anything in a tier root the store did
    not write (listed as skipped). With --dry-run nothing is removed."""
    from bifrost_core.ingest import upkeep

    config = settings()
    database = _open_database()
    try:
        report = upkeep.gc(database, config, grace_hours=grace_hours, dry_run=dry_run)
    finally:
        database.dispose()
    if as_json:
        print_json(vars(report))
        return
    temporary = "" if dry_run else f" and {report.temp_removed} temporary file(s)"
    typer.echo(
        f"{'would remove' if dry_run else 'removed'} {report.records_removed} unreferenced blob record(s), "
        f"{report.blobs_removed} blob(s) ({report.bytes_removed:,} bytes){temporary} "
        f"from {len(report.roots)} tier root(s); skipped {report.skipped} item(s)"
    )
    for what in report.skipped_examples:
        typer.echo(f"skipped: {what}", err=True)
    if report.skipped > len(report.skipped_examples):
        typer.echo(f"skipped: … and {report.skipped - len(report.skipped_examples)} more", err=True)


def _lag_lines(lags: list[ReplicaLag]) -> list[str]:
    return [
        f"replica {lag.replica} of {lag.tier}: {lag.replicated} blob(s) replicated, {lag.blobs} not yet "
        f"({lag.bytes:,} bytes; oldest {_age(lag.oldest_seconds)})"
        for lag in lags
    ]


def _age(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds:,.0f} s old"


def _replication_lag(database: Database) -> list[ReplicaLag]:
    from bifrost_core.replication import service as replication

    return replication.lag(database, replication.configured(database, settings()))


@app.command()
def replicas(as_json: bool = JsonOption) -> None:
    """Each tier's replicas (BIFROST_STORAGE_REPLICAS) and how far each is behind: blobs and
    bytes not yet copied and verified there, and the age of the oldest of them."""
    database = _open_database()
    try:
        lags = _replication_lag(database)
    finally:
        database.dispose()
    if as_json:
        print_json([vars(lag) for lag in lags])
        return
    if not lags:
        typer.echo("no replicas configured (BIFROST_STORAGE_REPLICAS)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Replicas and their lag")
    for header in ("tier", "replica", "replicated", "behind", "bytes behind", "oldest behind"):
        table.add_column(header, justify="left" if header in ("tier", "replica") else "right")
    for lag in lags:
        oldest = "-" if lag.oldest_seconds is None else f"{lag.oldest_seconds:,.0f} s"
        table.add_row(
            cell(lag.tier), cell(lag.replica), str(lag.replicated), str(lag.blobs), f"{lag.bytes:,}", oldest
        )
    Console().print(table)


@app.command()
def du(as_json: bool = JsonOption) -> None:
    """Bytes stored per tier and project (recorded), and per tier root (on the store)."""
    from bifrost_core.ingest import upkeep

    config = settings()
    database = _open_database()
    try:
        per_project = upkeep.du(database)
        per_tier = upkeep.tier_totals(database)
        roots = upkeep.physical(config, upkeep.tier_roots(database, config).items())
        lags = _replication_lag(database)
    finally:
        database.dispose()
    if as_json:
        print_json(
            {
                "projects": [vars(usage) for usage in per_project],
                "tiers": [vars(usage) for usage in per_tier],
                "roots": [{"tier": tier, "root": root, "bytes": size} for tier, root, size in roots],
                "replication": [vars(lag) for lag in lags],
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Stored bytes (recorded; a blob shared by projects counts in each)")
    for header in ("project", "tier", "blobs", "bytes"):
        table.add_column(header, justify="right" if header in ("blobs", "bytes") else "left")
    for usage in [*per_project, *per_tier]:
        table.add_row(
            cell("all projects" if usage.project == "*" else usage.project),
            cell(usage.tier),
            str(usage.blobs),
            f"{usage.bytes:,}",
        )
    for tier, root, size in roots:
        table.add_row("on the store", cell(f"{tier} ({root})"), "", f"{size:,}")
    Console().print(table)
    for line in _lag_lines(lags):
        say(line)
