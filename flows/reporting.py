"""What a run shows in the Prefect UI: its summary (markdown and tables) and its progress.

Any flow reports the same way: its summary is a `Report` (markdown and tables of rows),
and `publish_artifacts` turns it into the run's artifacts, keyed by flow and project. A run
that fails publishes what it did before the failure, with the failure as the report's first
line. `Progress` shows a long run's progress on a worker as a Prefect progress artifact.
`IngestReport` is the ingest and publish flows' `Report`.

Delivered names and typed text are shown literally: control characters escaped and
markdown's own characters backslashed (bifrost_core.text), so a file name can neither
forge lines, links or table cells in the summary nor reach a terminal raw.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Failed, State

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


class Report(Protocol):
    """A run's summary as the Prefect UI shows it."""

    @property
    def project(self) -> str: ...

    def markdown(self) -> str: ...

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(key suffix, description, rows) per table; a table without rows is not made."""
        ...


def publish_artifacts(kind: str, report: Report, *, failure: str | None = None) -> None:
    """The run's markdown summary and tables. `failure`: why the run failed, shown first,
    above what it had done by then."""
    key = artifact_key(kind, report.project)
    text = report.markdown()
    if failure is not None:
        text = f"**Failed: {escape_markdown(failure)}**\n\nDone before the failure:\n\n{text}"
    create_markdown_artifact(text, key=key, description=f"{kind} in {escape_markdown(report.project)}")
    for suffix, description, rows in report.tables():
        if rows:
            create_table_artifact(rows, key=f"{key}-{suffix}", description=description)


@dataclass
class IngestReport:
    """An ingest's or a publish's summary as a `Report`."""

    kind: str
    summary: IngestSummary

    @property
    def project(self) -> str:
        return self.summary.project

    def markdown(self) -> str:
        return markdown(self.kind, self.summary)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        summary, kind = self.summary, self.kind
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
            return [("plan", f"versions planned by {kind}", rows)]
        # A rerun that found everything done: the summary says so, no empty table.
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
        return [("versions", f"versions created by {kind}", rows)]


def failed(kind: str, report: Report, error: Exception) -> State:
    """How a run ends on an expected failure (a BifrostError: bad input, a store or the
    database refusing): the summary of what it did before, and one clear message as the
    run's state, without the traceback Prefect logs for a raised exception. Calling the flow
    still raises `error`, so the CLI prints its one line."""
    publish_artifacts(kind, report, failure=str(error))
    return Failed(message=f"{kind} failed: {error}", data=error)


class Progress:
    """A progress artifact of the run, fed by bifrost_core.ingest.progress (bytes stored of
    the total), updated at most every `every` seconds: one API call per interval, not per
    file. Listening in the flow's process, it sees the batches on the worker as the CLI's
    bar sees them on the embedded default."""

    def __init__(self, kind: str, project: str, every: float = 2.0) -> None:
        self.key = f"{artifact_key(kind, project)}-progress"
        self.description = f"{kind} in {escape_markdown(project)}: bytes stored"
        self.every = every
        self.artifact: UUID | None = None
        self.size = self.done = 0
        self.shown = 0.0
        self.lock = threading.Lock()  # two batches advance it at once

    def total(self, files: int, size: int) -> None:
        self.size, self.done = size, 0
        self.artifact = create_progress_artifact(0.0, key=self.key, description=self.description)
        self.shown = time.monotonic()

    def advance(self, files: int, size: int) -> None:
        with self.lock:
            self.done += size
            due = self.artifact is not None and time.monotonic() - self.shown >= self.every
            if due:
                self.shown = time.monotonic()
        if due:
            update_progress_artifact(self.artifact, self._percent())

    def finish(self) -> None:
        if self.artifact is not None:
            update_progress_artifact(self.artifact, self._percent())

    def _percent(self) -> float:
        return min(100.0, 100.0 * self.done / self.size) if self.size else 100.0

    def __enter__(self) -> Progress:
        from bifrost_core.ingest import progress

        progress.listen(self)
        return self

    def __exit__(self, *exc: object) -> None:
        from bifrost_core.ingest import progress

        progress.forget(self)
        self.finish()
