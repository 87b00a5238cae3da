"""bifrost — the command line of the Bifrost pipeline.

Each command group lives in its own module under `cli/` and is registered here
with one line. Modules import heavy libraries (Prefect, FastAPI, uvicorn) only
inside the commands that need them, so `bifrost --help` stays fast.
Exit codes: see `cli/errors.py`; the auto-initialisation of the embedded default: `cli/common.py`.
"""
# ruff: noqa: E402  (the warm runner's hand-over comes before the CLI's own imports)

from cli.runner import early_handover

early_handover()  # a flow command with a warm runner up runs there, and this process exits here

import os

import typer

from cli import (
    assets,
    casting,
    demo,
    episodes,
    init,
    projects,
    review,
    sequences,
    shots,
    tasks,
    users,
    versions,
    workflow,
)
from cli import backup as backup_cli
from cli import flows as flows_cli
from cli import ingest as ingest_cli
from cli import render as render_cli
from cli import review as review_cli
from cli import server as server_cli
from cli import storage as storage_cli
from cli.errors import BifrostGroup
from cli.gateway import gateway
from cli.serve import serve
from cli.tokens import app as token_app
from cli.worker import worker

app = typer.Typer(
    name="bifrost",
    cls=BifrostGroup,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Bifrost: the production pipeline. Exit codes: 0 ok, 1 unexpected, 2 usage, 3 not found, "
    "4 conflict, 5 invalid input, 6 not allowed, 7 configuration, "
    "8 a service unavailable (database, storage, Prefect), 9 verify found damage.",
)


@app.callback()
def main(
    log_json: bool = typer.Option(
        False, "--log-json", help="Flows run by this command log JSON lines (as BIFROST_LOG_JSON=1)"
    ),
) -> None:
    """Bifrost: the production pipeline (see `bifrost COMMAND --help`)."""
    if log_json:
        os.environ["BIFROST_LOG_JSON"] = "1"


app.command()(init.init)
app.add_typer(projects.app, name="project")
app.add_typer(episodes.app, name="episode")
app.add_typer(sequences.app, name="sequence")
app.add_typer(shots.app, name="shot")
app.add_typer(assets.app, name="asset")
app.add_typer(casting.app, name="casting")
app.add_typer(tasks.app, name="task")
app.add_typer(versions.app, name="version")
app.add_typer(workflow.app, name="workflow")
app.add_typer(review.app, name="review")
app.add_typer(users.app, name="user")
app.command()(demo.demo)
app.command()(serve)
app.command()(gateway)
app.add_typer(token_app, name="token")
app.command()(ingest_cli.ingest)
app.command()(ingest_cli.publish)
app.add_typer(flows_cli.app, name="flow")
app.command()(flows_cli.deploy)
app.command()(storage_cli.verify)
app.add_typer(storage_cli.app, name="storage")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(render_cli.app, name="render")
app.add_typer(review_cli.app, name="review")
app.add_typer(server_cli.app, name="server")
app.command()(worker)
