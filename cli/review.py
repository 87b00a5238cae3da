"""`bifrost review`: review media of versions (`bifrost review media VERSION...`).

The review-media flow runs by itself for every version ingest, publish and render create
(its deployment's trigger); this command makes them on demand, here or (`--deployment`) on
a worker: again after a project changed its proxy size (`--force`), or for versions made
before the flow existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cli.errors import EXIT_USAGE, fail
from cli.output import JsonOption, print_json, say
from cli.runner import through_runner

if TYPE_CHECKING:
    from bifrost_core.demo import Demo

app = typer.Typer(no_args_is_help=True, help="Review media of versions.")


@app.command()
def media(
    versions: list[int] = typer.Argument(..., help="Version ids (`bifrost version show`), of one project"),
    height: int | None = typer.Option(
        None, "--height", help="Proxy height (even, 64-4320); default the project's"
    ),
    force: bool = typer.Option(False, "--force", help="Make them again for versions that have them"),
    deployment: bool = typer.Option(
        False, "--deployment", help="Create a run of the review-media deployment for a worker, and return"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Make the proxy (H.264 with a burn-in), thumbnails and contact sheet of versions.

    Exit code 3 for a version you cannot see, 5 when a version has no readable frames or movie
    (the reason is recorded on it: `bifrost version show`) or the height is out of bounds.
    """
    through_runner()
    from bifrost_core.media.service import check_height
    from cli.flows import preflight, report, run_locally, start_on_worker
    from flows.registry import FLOWS

    check_height(height)
    project = _project_of(versions)
    flow_entry = FLOWS["review-media"]
    actor = preflight(flow_entry, project)
    given = {"versions": versions, "height": height, "force": force}
    if deployment:
        from cli.flows import persistent_server

        persistent_server()
        started = start_on_worker(flow_entry, {"actor": actor, "project": project, **given})
        if as_json:
            print_json(started)
        else:
            say(f"started run {started['run_id']} ({started['name']}) of {flow_entry.deployment}")
        return
    report(run_locally(flow_entry, actor, project, given, bar=False), as_json=as_json)


def _project_of(versions: list[int]) -> str:
    """The code of the one project the versions belong to (not found: exit 3)."""
    from bifrost_core.projects.models import Project
    from bifrost_core.versions.repository import VersionRepository
    from cli.common import unit_of_work

    with unit_of_work() as unit:
        repository = VersionRepository(unit.session, unit.actor)
        projects = {repository.get(version).project_id for version in versions}
        if len(projects) > 1:
            raise fail("the versions belong to several projects: run one command per project", EXIT_USAGE)
        return unit.session.get(Project, projects.pop()).code


def demo_review_media(demo: Demo) -> str:
    """The demo's step: the review media of every version of the demo project (those made
    already are kept), through the review-media flow on the embedded Prefect server."""
    from sqlalchemy import select

    from bifrost_core.versions.models import Version
    from cli.flows import prefect_env, server_ready

    with demo.session() as session:
        project_id = demo.project_id(session)
        versions = list(
            session.scalars(select(Version.id).where(Version.project_id == project_id).order_by(Version.id))
        )
    if not versions:
        return "no versions to review"
    server = prefect_env()
    from flows.review import review_media

    server_ready(server)
    report = review_media(actor=demo.actor.username, project=demo.project, versions=versions)
    made = sum(outcome.result is not None and outcome.result.created for outcome in report.outcomes)
    return f"{len(versions)} versions have them ({made} made now)"
