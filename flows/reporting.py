"""Prefect artifacts of ingest and publish runs: a markdown summary and a table of versions."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bifrost_core.ingest.schemas import IngestSummary

SHOWN_PROBLEMS = 20


def artifact_key(kind: str, project: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes: one key per flow and project."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{project}".lower()).strip("-")


def markdown(kind: str, summary: IngestSummary) -> str:
    verb = "would create" if summary.dry_run else "created"
    versions = summary.planned_new + summary.planned_changed if summary.dry_run else len(summary.created)
    lines = [
        f"# {kind.capitalize()} {'plan' if summary.dry_run else 'summary'}: {summary.project}",
        "",
        f"Source `{summary.source}` → tier `{summary.tier}`",
        "",
        "| | count |",
        "| --- | ---: |",
        f"| new versions (planned) | {summary.planned_new} |",
        f"| changed versions (planned) | {summary.planned_changed} |",
        f"| already ingested | {summary.known} |",
        f"| versions {verb} | {versions} |",
        f"| unmatched paths | {len(summary.unmatched)} |",
        f"| problems | {len(summary.problems)} |",
        f"| files / bytes seen | {summary.files} / {summary.bytes:,} |",
        f"| files / bytes copied | {summary.files_copied} / {summary.bytes_copied:,} |",
        f"| stored blobs repaired (missing or damaged) | {summary.blobs_repaired} |",
    ]
    for title, items in (("Problems", summary.problems), ("Unmatched", summary.unmatched)):
        if items:
            lines += ["", f"## {title}", ""]
            lines += [f"- `{item.path}`: {item.message}" for item in items[:SHOWN_PROBLEMS]]
            if len(items) > SHOWN_PROBLEMS:
                lines.append(f"- … and {len(items) - SHOWN_PROBLEMS} more")
    return "\n".join(lines)


def publish_artifacts(kind: str, summary: IngestSummary) -> None:
    key = artifact_key(kind, summary.project)
    create_markdown_artifact(markdown(kind, summary), key=key, description=f"{kind} of {summary.source}")
    if summary.dry_run and summary.plan is not None:
        rows = [
            {
                "target": v.target.label,
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
            "target": version.target,
            "number": version.number,
            "representations": version.representations,
            "files": version.files,
            "bytes": version.size,
        }
        for version in summary.created
    ]
    create_table_artifact(rows, key=f"{key}-versions", description=f"versions created by {kind}")
