"""`bifrost demo`: Bifrost's main job on the embedded default, as one ordered list of steps.

The production is seeded first (bifrost_core.demo: project, artists, shots, assets,
casting, tasks), then the steps below run, each a function `step(demo) -> str` doing one
part of the job and returning a one-line report. Every step is idempotent, so running
the demo again leaves the same production, and a run that stops half-way is completed by
running it again.

To add a part of the job (review, render, archive), write its step function and append
it to STEPS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cli.common import operator, settings
from cli.delivery import ingest_delivery
from cli.review import demo_review_media, demo_review_page

if TYPE_CHECKING:
    from rich.console import Console

    from bifrost_core.demo import Demo

# The main job after the production is seeded, in order. Later issues append review,
# render and archive steps here.
STEPS: list[tuple[str, Callable[[Demo], str]]] = [
    ("delivery", ingest_delivery),
    ("review media", demo_review_media),
    ("review page", demo_review_page),
]


def demo() -> None:
    """Run Bifrost's main job on the embedded default: set up the home and build a small production."""
    from cli.runner import through_runner

    through_runner()
    from rich.console import Console

    from bifrost_core import bootstrap
    from bifrost_core.demo import SEED_STEPS, Demo

    console = Console()
    config = settings()
    result = bootstrap.initialise(config)
    try:
        safe_url = result.database.engine.url.render_as_string(hide_password=True)
        console.print(f"Bifrost home: {config.home}\ndatabase: {safe_url}", highlight=False, soft_wrap=True)
        if result.admin_token is not None:
            console.print(
                "the API token of the admin user 'admin' is shown only once, keep it safe:\n"
                f"{result.admin_token.token}",
                highlight=False,
                soft_wrap=True,
            )
        actor = operator(result.database)
        console.print(f"acting as {actor.username}", highlight=False)
        context = Demo(settings=config, database=result.database, actor=actor)
        for title, step in [*SEED_STEPS, *STEPS]:
            console.print(f"[green]✓[/green] {title}: {step(context)}")
        summarise(context, console)
    finally:
        result.database.dispose()


def summarise(demo: Demo, console: Console) -> None:
    """Print what the production now holds: counts, then a table of the shots."""
    from rich.table import Table
    from sqlalchemy import func, select

    from bifrost_core.assets.models import Asset, AssetType, Casting
    from bifrost_core.projects.models import Sequence, Shot
    from bifrost_core.tasks.models import Task
    from cli.shots import shot_columns

    with demo.session() as session:
        project_id = demo.project_id(session)
        counts = Table(title=f"Production {demo.project}", show_header=False)
        counts.add_column("what", style="bold")
        counts.add_column("count", justify="right")
        for label, model in [
            ("sequences", Sequence),
            ("shots", Shot),
            ("asset types", AssetType),
            ("assets", Asset),
            ("castings", Casting),
            ("tasks", Task),
        ]:
            total = session.scalar(
                select(func.count()).select_from(model).where(model.project_id == project_id)
            )
            counts.add_row(label, str(total))
        console.print(counts)

        rows = session.execute(
            select(Shot, Sequence.code)
            .join(Sequence, Sequence.id == Shot.sequence_id)
            .where(Shot.project_id == project_id)
            .order_by(Sequence.code, Shot.code)
        ).all()
        sequence_codes = {shot.id: sequence_code for shot, sequence_code in rows}
        cast = dict(
            session.execute(
                select(Casting.shot_id, func.sum(Casting.count))
                .where(Casting.project_id == project_id)
                .group_by(Casting.shot_id)
            ).all()
        )
        tasks = dict(
            session.execute(
                select(Task.shot_id, func.count()).where(Task.project_id == project_id).group_by(Task.shot_id)
            ).all()
        )
        columns = [
            *shot_columns(sequence_codes),
            ("cast", lambda s: cast.get(s.id, 0)),
            ("tasks", lambda s: tasks.get(s.id, 0)),
        ]
        shots = Table(title=f"Shots of {demo.project}")
        for header, _ in columns:
            shots.add_column(header)
        for shot, _ in rows:
            shots.add_row(*(str(value(shot)) for _, value in columns))
        console.print(shots)
