"""Prefect artifacts of ingest and publish runs: a markdown summary and a table of versions.

Delivered names and typed text are shown literally: control characters escaped and
markdown's own characters backslashed (bifrost_core.text), so a file name can neither
forge lines, links or table cells in the summary nor reach a terminal raw.
"""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bifrost_core.ingest.schemas import IngestSummary
from bifrost_core.text import escape, escape_markdown

SHOWN_PROBLEMS = 20


def artifact_key(kind: str, project: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes: one key per flow and project."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{project}".lower()).strip("-")


def markdown(kind: str, summary: IngestSummary) -> str:
    verb = "would create" if summary.dry_run else "created"
    versions = summary.planned_new + summary.planned_changed if summary.dry_run else len(summary.created)
    heading = f"{kind.capitalize()} {'plan' if summary.dry_run else 'summary'}"
    lines = [
        f"# {heading}: {escape_markdown(summary.project)}",
        "",
        f"Source {escape_markdown(summary.source)} → tier {escape_markdown(summary.tier)}",
        "",
        "| | count |",
        "| --- | ---: |",
        f"| new versions (planned) | {summary.planned_new} |",
        f"| changed versions (planned) | {summary.planned_changed} |",
        f"| already ingested | {summary.known} |",
        f"| versions {verb} | {versions} |",
        f"| unmatched paths | {len(summary.unmatched)} |",
        f"| problems | {len(summary.problems)} |",
        f"| versions held back | {len(summary.held_back)} |",
        f"| files / bytes seen | {summary.files} / {summary.bytes:,} |",
        f"| files / bytes copied | {summary.files_copied} / {summary.bytes_copied:,} |",
        f"| stored blobs repaired (missing or damaged) | {summary.blobs_repaired} |",
    ]
    sections = (
        ("Held back (not registered)", [(held.target, held.reason) for held in summary.held_back]),
        ("Problems", [(item.path, item.message) for item in summary.problems]),
        ("Unmatched", [(item.path, item.message) for item in summary.unmatched]),
    )
    for title, items in sections:
        if items:
            lines += ["", f"## {title}", ""]
            shown = items[:SHOWN_PROBLEMS]
            lines += [f"- {escape_markdown(what)}: {escape_markdown(why)}" for what, why in shown]
            if len(items) > SHOWN_PROBLEMS:
                lines.append(f"- … and {len(items) - SHOWN_PROBLEMS} more")
    return "\n".join(lines)


def publish_artifacts(kind: str, summary: IngestSummary) -> None:
    key = artifact_key(kind, summary.project)
    create_markdown_artifact(
        markdown(kind, summary), key=key, description=f"{kind} of {escape_markdown(summary.source)}"
    )
    if summary.dry_run and summary.plan is not None:
        rows = [
            {
                "target": escape(v.target.label),
                "status": v.status,
                "missing_blobs": v.missing,
                "files": len(v.files),
                "bytes": v.size,
            }
            for v in summary.plan.versions
        ]
        create_table_artifact(rows, key=f"{key}-plan", description=f"versions planned by {kind}")
        return
    if not summary.created:
        return  # a rerun that found everything done: the summary says so, no empty table
    rows = [
        {
            "version_id": version.version_id,
            "target": escape(version.target),
            "number": version.number,
            "representations": version.representations,
            "files": version.files,
            "bytes": version.size,
        }
        for version in summary.created
    ]
    create_table_artifact(rows, key=f"{key}-versions", description=f"versions created by {kind}")
