"""The review-media flow: proxies, thumbnails and contact sheets of versions.

Started for every version an ingest, a publish or a render creates by the trigger of its
deployment on the `bifrost.version.created` event (flows/registry.py; turn it off in the
Prefect UI's Automations, or add a studio's own flows on the same event), and on demand
(`bifrost review media`, the API's flow route, the Prefect UI). Each version is made on
its own: one that cannot have review media has the reason recorded on it and the others
are still made; the run then fails, naming them.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from prefect.states import State
from pydantic import BaseModel, Field

from bifrost_core.errors import (
    BifrostError,
    ConfigError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
)
from bifrost_core.media.settings import ProxyHeight
from bifrost_core.text import escape, escape_markdown
from flows.parameters import Actor, ProjectCode
from flows.reporting import failed, publish_artifacts
from flows.runs import begin, parameters
from tasks.review import MediaOutcome, make_review_media

VersionId = Annotated[int, Field(ge=1, le=2**63 - 1)]
SHOWN = 50
ERRORS: dict[str, type[BifrostError]] = {
    kind.code: kind
    for kind in (ConfigError, DatabaseUnavailable, InvalidInput, NotFound, PermissionDenied, StorageError)
}


def run_name() -> str:
    """`review-media DEMO v12` or `review-media DEMO 40 versions`."""
    given = parameters()
    versions = given.get("versions") or []
    what = f"v{versions[0]}" if len(versions) == 1 else f"{len(versions)} versions"
    return f"review-media {given['project']} {what}"


class ReviewReport(BaseModel):
    """A review-media run's summary (a flows.reporting `Report`)."""

    project: str
    outcomes: list[MediaOutcome] = []

    @property
    def failures(self) -> list[MediaOutcome]:
        return [outcome for outcome in self.outcomes if outcome.error is not None]

    def markdown(self) -> str:
        made = [o for o in self.outcomes if o.result is not None and o.result.created]
        kept = [o for o in self.outcomes if o.result is not None and not o.result.created]
        lines = [
            f"# Review media: {escape_markdown(self.project)}",
            "",
            "| | count |",
            "| --- | ---: |",
            f"| versions made | {len(made)} |",
            f"| versions that had them already | {len(kept)} |",
            f"| versions without review media | {len(self.failures)} |",
        ]
        if self.failures:
            lines += ["", "## Without review media", ""]
            lines += [
                f"- version {o.version_id}: {escape_markdown(o.error or '')}" for o in self.failures[:SHOWN]
            ]
            if len(self.failures) > SHOWN:
                lines.append(f"- … and {len(self.failures) - SHOWN} more")
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        rows = [
            {
                "version_id": o.version_id,
                "version": escape(o.result.label),
                "made": o.result.created,
                "frames": o.result.frames,
                "size": f"{o.result.width}x{o.result.height}" if o.result.created else "",
            }
            for o in self.outcomes
            if o.result is not None
        ]
        return [("versions", "review media by version", rows)]


@flow(name="review-media", flow_run_name=run_name)
def review_media(
    actor: Actor,
    project: ProjectCode,
    versions: Annotated[list[VersionId], Field(min_length=1, max_length=1000)],
    height: ProxyHeight | None = None,
    force: bool = False,
) -> ReviewReport | State:
    """Make the review media of versions: an H.264 proxy with a burn-in, thumbnails, a contact sheet.

    Args:
        actor: Bifrost username of who starts the run (your own); a triggered run acts as
            whoever created the version
        project: Project code, e.g. DEMO
        versions: Version ids (of the project)
        height: Proxy height in pixels (even); by default the project's (config.review.proxy_height, 1080)
        force: Make them again even for versions that have them
    """
    checked = begin("review-media", actor, project)
    report = ReviewReport(project=project)
    for version in dict.fromkeys(versions):
        report.outcomes.append(make_review_media(version, checked, project, height, force))
    if report.failures:
        first = report.failures[0]
        others = f" (and {len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        # The first failure's own kind (not found, invalid input, ...): the CLI's exit code.
        kind = ERRORS.get(first.error_code or "", InvalidInput)
        return failed("review-media", report, kind(f"{first.error}{others}"))
    publish_artifacts("review-media", report)
    return report
