"""Storage tiering flows: `archive` (one project: the versions its policy selects go to its
archive tier), `archive-all` (every project with a policy; scheduled nightly) and
`archive-restore` (versions back to hot). The rules and the move live in
bifrost_core/lifecycle (moves.py says the order of a move and why it is crash-safe).

Each run publishes a markdown artifact: the versions moved (or, dry, that would move) and
the bytes each tier gains and frees. A run that could not move some blobs (a damaged copy)
fails, naming them, after moving the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from prefect import flow
from prefect.states import Failed, State
from pydantic import Field

from bifrost_core.errors import DamagedContent
from bifrost_core.lifecycle.moves import ArchiveReport
from bifrost_core.lifecycle.restores import RestoreReport, pending_message
from bifrost_core.text import escape_markdown
from flows.parameters import Actor, ProjectCode
from flows.reporting import publish_artifacts
from flows.runs import begin, begin_studio
from tasks.archive import archive_every_project, archive_project, restore_versions

STUDIO = "studio"
SHOWN = 200
VersionId = Annotated[int, Field(ge=1, le=2**63 - 1)]


@dataclass
class ArchiveSummary:
    """An archive run's `Report`: one section per project."""

    reports: list[ArchiveReport]
    project: str = STUDIO
    dry_run: bool = False

    @property
    def failures(self) -> list[str]:
        return [failure for report in self.reports for failure in report.failures]

    def markdown(self) -> str:
        title = "Archive (dry run: nothing moved)" if self.dry_run else "Archive"
        verb = "would move" if self.dry_run else "moved"
        lines = [f"# {title}", ""]
        if not self.reports:
            lines.append("No project has an archive policy that selects anything.")
        for report in self.reports:
            lines += [f"## {escape_markdown(report.project)} → tier {escape_markdown(report.tier)}", ""]
            if report.skipped:
                lines += [f"Skipped: {escape_markdown(report.skipped)}", ""]
                continue
            lines += [
                "| tier | bytes in | bytes freed |",
                "| --- | ---: | ---: |",
                *[f"| {escape_markdown(t.tier)} | {t.added:,} | {t.freed:,} |" for t in report.tiers],
                "",
                f"{len(report.versions)} version(s) {verb}; "
                f"{report.shared_kept_hot} blob(s) shared with hot versions stay hot.",
                "",
            ]
            if report.versions:
                lines += ["| version | rule | files | bytes |", "| ---: | --- | ---: | ---: |"]
                lines += [
                    f"| {m.version_id} | {m.rule} | {m.files} | {m.bytes:,} |"
                    for m in report.versions[:SHOWN]
                ]
                if len(report.versions) > SHOWN:
                    lines.append(f"| … | {len(report.versions) - SHOWN} more | | |")
                lines.append("")
            if report.failures:
                lines += [
                    "### Not moved",
                    "",
                    *[f"- {escape_markdown(f)}" for f in report.failures[:SHOWN]],
                    "",
                ]
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        rows = [
            {
                "project": r.project,
                "version_id": m.version_id,
                "rule": m.rule,
                "files": m.files,
                "bytes": m.bytes,
            }
            for r in self.reports
            for m in r.versions
        ]
        return [("versions", "versions moved to an archive tier" if not self.dry_run else "would move", rows)]


def _finish(kind: str, summary: ArchiveSummary) -> ArchiveSummary | State:
    if summary.failures:
        damage = f"{len(summary.failures)} blob(s) not moved: {summary.failures[0]}"
        publish_artifacts(kind, summary, failure=damage)
        return Failed(message=f"{kind}: {damage}", data=DamagedContent(f"{kind}: {damage}"))
    publish_artifacts(kind, summary)
    return summary


@flow(name="archive", flow_run_name="archive {project}")
def archive(
    actor: Actor, project: ProjectCode, dry_run: bool = False, force: bool = False
) -> ArchiveSummary | State:
    """Move the versions the project's archive policy selects to its archive tier.

    Args:
        actor: Bifrost username of who starts the run (your own)
        project: Project code, e.g. DEMO
        dry_run: Only report what would move and the bytes per tier
        force: Archive even when the policy selects every hot version of the project
    """
    checked = begin("archive", actor, project)
    report = archive_project(checked, project, dry_run, force)
    return _finish("archive", ArchiveSummary([report], project=project, dry_run=dry_run))


@flow(name="archive-all", flow_run_name="archive-all")
def archive_all(actor: Actor, dry_run: bool = False) -> ArchiveSummary | State:
    """Archive, in every project with a policy, the versions it selects; a project whose
    policy selects all its hot versions is skipped (archive it with `force`, on its own).

    Args:
        actor: Bifrost username the run acts as: an admin (schedules: the service user)
        dry_run: Only report what would move and the bytes per tier
    """
    checked = begin_studio("archive-all", actor)
    return _finish("archive-all", ArchiveSummary(archive_every_project(checked, dry_run), dry_run=dry_run))


@dataclass
class RestoreSummary:
    report: RestoreReport
    project: str

    def markdown(self) -> str:
        lines = [
            "# Restore",
            "",
            "| version | state | from tier | blobs | bytes |",
            "| ---: | --- | --- | ---: | ---: |",
        ]
        lines += [
            f"| {o.version_id} | {o.state} | {escape_markdown(o.tier or '')} | {o.blobs} | {o.bytes:,} |"
            for o in self.report.outcomes
        ]
        if self.report.pending:
            lines += ["", escape_markdown(pending_message(self.report))]
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        return []


@flow(name="archive-restore", flow_run_name="archive-restore {project}")
def archive_restore(
    actor: Actor,
    project: ProjectCode,
    versions: Annotated[list[VersionId], Field(min_length=1, max_length=10000)],
) -> RestoreSummary:
    """Bring archived versions back to the hot tier (a cold tier answers when they will be ready).

    Args:
        actor: Bifrost username of who starts the run (your own)
        project: Project code, e.g. DEMO
        versions: Version ids (of the project)
    """
    checked = begin("archive-restore", actor, project)
    summary = RestoreSummary(restore_versions(checked, project, versions), project=project)
    publish_artifacts("archive-restore", summary)
    return summary
