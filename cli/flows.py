"""`bifrost flow list/show/run/reconcile` and `bifrost deploy`: the registry's flows from the shell.

`bifrost flow run NAME -p PROJECT --param key=value ...` runs a flow in this process, or in
the warm runner of the home's persistent Prefect server (cli/runner.py, cli/server.py; with
PREFECT_API_URL set, that server records the run), or with `--deployment` creates a run of
its deployment for a worker to run, as the API does. A studio-wide flow (`verify`,
`storage-gc`) takes no `-p`, and only an admin runs it. `bifrost ingest`/`publish` are this,
with options of their own. The registry (whose package sets Prefect's home up, reading
the settings) and Prefect are imported inside the commands, so `bifrost --help` stays fast.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.common import flow_actor, open_database, operator, unit_of_work
from cli.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_USAGE, fail
from cli.output import JsonOption, keyed, print_json, render_list, say, say_lines
from cli.runner import prefect_answers, through_runner

if TYPE_CHECKING:
    from bifrost_core.db.database import Database
    from deployments.local_server import ServerProcess
    from flows.registry import FlowEntry

app = typer.Typer(help="The registry's flows: list them, run one, start lost runs (`reconcile`).")

# Services a per-command server does without (BIFROST_PREFECT_SERVER=ephemeral).
EPHEMERAL_OFF = [
    "PREFECT_SERVER_UI_ENABLED",
    *(
        f"PREFECT_SERVER_SERVICES_{service}_ENABLED"
        for service in (
            "SCHEDULER",
            "LATE_RUNS",
            "FOREMAN",
            "TRIGGERS",
            "PAUSE_EXPIRATIONS",
            "REPOSSESSOR",
            "CANCELLATION_CLEANUP",
            "CLEANUP_RECONCILER",
        )
    ),
]


def quiet_prefect() -> None:
    """Before Prefect is imported (it reads its settings then): no analytics, and its console
    logs off unless BIFROST_DEBUG=1 or the operator chose a level (see `prefect_env`)."""
    from cli.runner import quiet_defaults

    for key, value in quiet_defaults(os.environ).items():
        os.environ.setdefault(key, value)


def prefect_env() -> ServerProcess | None:
    """Choose the Prefect server before Prefect is imported.

    PREFECT_API_URL set: that server. Otherwise the persistent server of this Bifrost home
    (`bifrost server start`; a flow command reaching here with it down runs where its
    runner could not take it, see cli/runner.py), or a server that answers on
    BIFROST_PREFECT_PORT. Otherwise (and always with BIFROST_PREFECT_SERVER=ephemeral) a
    server for this command alone, with its database under BIFROST_HOME/prefect (see
    tasks/__init__.py): it is started now and returned, for `server_ready` once the flow's
    modules are imported (the two overlap), and stopped when the command exits.
    Prefect's console logs are off unless BIFROST_DEBUG=1 or the operator chose a level:
    the command reports every outcome itself (a summary, problems, or one error line),
    where Prefect would print each expected failure with its traceback, once per run and
    per task, and tear through the progress bar (its server still gets every log).
    """
    quiet_prefect()
    if os.environ.get("PREFECT_API_URL"):
        return None
    from cli.runner import server_mode

    if server_mode() != "ephemeral" and _use_local_server():
        return None
    import tasks  # noqa: F401  (puts PREFECT_HOME inside BIFROST_HOME)
    from deployments.local_server import ephemeral_server

    # No UI to serve, and no scheduler or other loop services (they only slow start-up down).
    server = ephemeral_server(
        Path(os.environ["PREFECT_HOME"]), {**{name: "false" for name in EPHEMERAL_OFF}, **os.environ}
    )
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def _use_local_server() -> bool:
    """Point Prefect at the home's persistent server, or whatever answers on its port."""
    from cli.common import settings
    from cli.runner import client_defaults
    from deployments.local_server import ServerFiles, read_state

    config = settings()
    state = read_state(ServerFiles.of(config.home))
    api_url = state["api_url"] if state is not None else f"http://127.0.0.1:{config.prefect_port}/api"
    if state is None and not prefect_answers(api_url):
        return False
    # As the runner sets itself up: a command served by it and one run here see the same settings.
    for key, value in client_defaults(os.environ, api_url, config.home).items():
        os.environ.setdefault(key, value)
    return True


def server_ready(server: ServerProcess | None) -> None:
    """Wait for the command's own Prefect server, if it has one; a one-line error if it fails."""
    if server is None:
        return
    from deployments.local_server import ServerDidNotStart

    try:
        server.wait_ready()
    except ServerDidNotStart as exc:
        say(f"error: cannot start the embedded Prefect server: {exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def persistent_server() -> None:
    """PREFECT_API_URL, or the home's server (`bifrost server start`) or one on its port when
    it answers; else exit 7 (deployments and runs of them live on a server that outlasts the
    command)."""
    quiet_prefect()
    if not os.environ.get("PREFECT_API_URL") and not _use_local_server():
        say("error: no Prefect server: run `bifrost server start` (or set PREFECT_API_URL)", err=True)
        raise typer.Exit(EXIT_CONFIG)


class ProgressBar:
    """A rich progress bar fed by bifrost_core.ingest.progress (files, bytes, rate, ETA)."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[files_total]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("starting Prefect", total=None, files=0, files_total="?")
        self.files = 0

    def total(self, files: int, size: int) -> None:
        self.progress.update(
            self.task, description="storing", total=max(size, 1), completed=0, files_total=files
        )

    def advance(self, files: int, size: int) -> None:
        self.files += files
        self.progress.update(self.task, advance=size, files=self.files)

    def __enter__(self) -> ProgressBar:
        from bifrost_core.ingest import progress

        progress.listen(self)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from bifrost_core.ingest import progress

        progress.forget(self)
        self.progress.stop()


def preflight(
    flow_entry: FlowEntry, project: str | None, check: Callable[[Database], None] | None = None
) -> str:
    """What the flow would refuse, checked before any Prefect server starts: the operator
    may run it (in the project, or as an admin for a studio-wide flow; else one line and
    exit 6), and `check` (e.g. the tier's root takes writes). Returns the operator's
    username, the run's actor; the flow checks again where it runs. The embedded default
    migrates itself here, before any flow starts."""
    from flows.registry import STUDIO

    database = open_database()
    try:
        if flow_entry.scope == STUDIO or project is None:
            username = studio_actor(database, flow_entry.name)
        else:
            username = flow_actor(database, project, flow_entry.action)
        if check is not None:
            check(database)
        return username
    finally:
        database.dispose()


def studio_actor(database: Database, flow: str) -> str:
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.users import identity

    username = operator(database).username
    with UnitOfWork(database) as uow:
        identity.studio_flow_actor(uow.session, username=username, flow=flow)
    return username


def run_locally(
    flow_entry: FlowEntry, actor: str, project: str | None, given: dict[str, Any], *, bar: bool
) -> Any:
    """Run the flow in this process, `given` checked against its parameters first (one line
    and exit 5 if refused). Its Prefect server starts while its modules are imported."""
    # Before Prefect is imported: heartbeats as often as a worker's, so the zombie-run
    # automation (deployments/automations.py) never takes this run for a dead one.
    from deployments.automations import HEARTBEAT_SECONDS

    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    server = prefect_env()
    body = flow_entry.body_model(remote=False).model_validate(given)  # imports the flow (and Prefect)
    flow = flow_entry.load()
    from flows.process import prepare_run_process

    prepare_run_process("bifrost-cli")  # before the engine starts the run and its span
    from prefect import tags

    from flows.registry import project_tag

    server_ready(server)
    place = {} if project is None else {"project": project}
    # Tagged as it is created: the flow need not tag its own run (one API call less).
    run_tags = ["bifrost"] if project is None else ["bifrost", project_tag(project)]
    with ProgressBar(enabled=bar), tags(*run_tags):
        return flow(actor=actor, **place, **body.model_dump(exclude_unset=True))


def _parse(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; a value that starts like JSON (`[`, `{`) is read as JSON, others stay
    text for the flow's types to convert ("4" to 4, "true" to True)."""
    from bifrost_core.errors import InvalidInput

    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r} is not key=value")
        if value[:1] in ("[", "{"):
            try:
                given[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"--param {key}: not JSON: {exc.msg}") from None
        else:
            given[key] = value
    return given


@app.command("list")
def list_flows(as_json: bool = JsonOption) -> None:
    """The registry's flows: name, scope, who may start them, work pool, concurrency, schedules
    (`--json`: with their descriptions and the schedules' parameters)."""
    from flows.registry import FLOWS

    rows = [
        {
            "name": item.name,
            "deployment": item.deployment,
            "scope": item.scope,
            "action": item.action,
            "work_pool": item.work_pool,
            "concurrency_limit": item.concurrency_limit,
            "schedules": [
                {"when": schedule_text(schedule), "parameters": schedule.get("parameters", {})}
                for schedule in item.schedules
            ],
            "description": item.description,
        }
        for item in FLOWS.values()
    ]
    # The deployment (always name/name), the description and who schedules act as: in the
    # JSON only, so the table fits a terminal.
    columns = keyed(
        ("name", "flow"),
        ("scope", "scope"),
        ("action", "permission"),
        ("work_pool", "pool"),
        ("concurrency_limit", "at once"),
        ("schedules", "schedule"),
    )
    shown = [{**row, "schedules": "; ".join(s["when"] for s in row["schedules"]) or "-"} for row in rows]
    render_list(rows if as_json else shown, None, columns, as_json=as_json, title="Flows")


def schedule_text(schedule: dict[str, Any]) -> str:
    """A registry schedule in a few words: `0 2 * * * UTC`, `every 30 s`."""
    if "cron" in schedule:
        return f"{schedule['cron']} {schedule.get('timezone', 'UTC')}"
    if "interval" in schedule:
        return f"every {schedule['interval']:g} s"
    return f"rrule {schedule.get('rrule')}"


@app.command()
def show(name: str = typer.Argument(..., help="Flow name"), as_json: bool = JsonOption) -> None:
    """A flow's parameters (what `--param` and the API's request body take), as a JSON schema."""
    from flows.registry import entry

    quiet_prefect()  # the schema comes from the flow's signature: its module imports Prefect
    schema = entry(name).body_model().model_json_schema()
    if as_json:
        print_json(schema)
        return
    required = set(schema.get("required", []))
    for key, field in schema["properties"].items():
        default = "" if key in required else f" = {json.dumps(field.get('default'))}"
        say(f"{key}{default}: {field.get('description') or ''}")


@app.command()
def run(
    name: str = typer.Argument(..., help="Flow name (`bifrost flow list`)"),
    project: str | None = typer.Option(
        None, "--project", "-p", help="Project code (a project flow; a studio-wide flow takes none)"
    ),
    param: list[str] = typer.Option(
        [], "--param", help="A parameter, key=value (repeat); see `bifrost flow show`"
    ),
    deployment: bool = typer.Option(
        False, "--deployment", help="Create a run of the flow's deployment for a worker, and return"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run a flow as yourself: here, in this process, or (`--deployment`) on a worker."""
    through_runner()
    from flows.registry import STUDIO, entry

    flow_entry = entry(name)
    studio = flow_entry.scope == STUDIO
    if studio and project is not None:
        raise fail(f"flow {name!r} is studio-wide: it takes no --project", EXIT_USAGE)
    if not studio and project is None:
        raise fail(f"flow {name!r} works in a project: give --project/-p", EXIT_USAGE)
    given = _parse(param)
    actor = preflight(flow_entry, project)
    if deployment:
        persistent_server()
        body = flow_entry.body_model().model_validate(given)
        parameters = {"actor": actor, **body.model_dump()}
        if studio:
            started = start_studio_on_worker(flow_entry, parameters)
        else:
            started = start_on_worker(flow_entry, {**parameters, "project": project})
        if as_json:
            print_json(started)
        else:
            say(f"started run {started['run_id']} ({started['name']}) of {flow_entry.deployment}")
        return
    result = run_locally(flow_entry, actor, project, given, bar=not as_json)
    report(result, as_json=as_json)


def start_studio_on_worker(flow_entry: FlowEntry, parameters: dict[str, Any]) -> dict[str, str]:
    """A run of a studio-wide flow's deployment: it belongs to no project, so Bifrost keeps
    no record of it (Prefect does)."""
    from deployments.runs import prefect_api, start_studio_run

    with prefect_api():
        flow_run = start_studio_run(flow_entry, parameters)
    return {"run_id": str(flow_run.id), "name": flow_run.name}


def start_on_worker(flow_entry: FlowEntry, parameters: dict[str, Any]) -> dict[str, str]:
    """A run of the deployment, recorded first (the outbox, as the API does it)."""
    from bifrost_core.projects.repository import ProjectRepository
    from deployments.runs import start_run

    with unit_of_work() as unit:
        project_id = ProjectRepository(unit.session, unit.actor).by_code(parameters["project"]).id
        _, flow_run = start_run(
            unit.session, actor=unit.actor, project_id=project_id, entry=flow_entry, parameters=parameters
        )
        unit.commit()
    return {"run_id": str(flow_run.id), "name": flow_run.name}


def report(result: Any, *, as_json: bool) -> None:
    """What a flow returned: its summary's markdown (or JSON); anything else as JSON."""
    import dataclasses

    from pydantic import BaseModel

    if not as_json and hasattr(result, "markdown"):
        say_lines(result.markdown())
    elif isinstance(result, BaseModel):
        print_json(result.model_dump(mode="json"))
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        print_json(dataclasses.asdict(result))
    else:
        print_json(result)


@app.command()
def reconcile(as_json: bool = JsonOption) -> None:
    """Start the runs recorded but never started in Prefect (a crash between the two)."""
    persistent_server()
    from deployments.runs import reconcile as start_lost

    database = open_database()
    try:
        done = start_lost(database)
    finally:
        database.dispose()
    rows = [
        {"id": run.id, "flow": run.flow, "project_id": run.project_id, "outcome": what} for run, what in done
    ]
    columns = keyed(
        ("id", "record"),
        ("flow", "flow"),
        ("project_id", "project"),
        ("outcome", "outcome"),
    )
    render_list(rows, None, columns, as_json=as_json, title="Reconciled runs")


def deploy(
    prefect_yaml: bool = typer.Option(
        False, "--prefect-yaml", help="Only write prefect.yaml from the registry (for `prefect deploy --all`)"
    ),
) -> None:
    """Set up the Prefect server (PREFECT_API_URL) for Bifrost: the service user scheduled runs
    act as (in Bifrost's database), the work pools, every flow's deployment, and the
    automation that marks runs whose heartbeat stopped as crashed. Safe to rerun."""
    from deployments.flows import PREFECT_YAML

    if prefect_yaml:
        from deployments.flows import prefect_yaml as text

        PREFECT_YAML.write_text(text())
        say(f"wrote {PREFECT_YAML}")
        return
    persistent_server()
    from bifrost_core.users import identity
    from deployments.automations import ZOMBIE_AUTOMATION, ensure_zombie_automation
    from deployments.flows import POOL_TYPES, ensure_pools, register
    from flows.registry import FLOWS, SERVICE_USER

    # Bifrost's side first: an operator who may not create users stops here, before Prefect changes.
    with unit_of_work() as unit:
        service_user = identity.ensure_service_user(unit.session, actor=unit.actor, username=SERVICE_USER)
        unit.commit()
    pools = ensure_pools(set(POOL_TYPES) | {entry.work_pool for entry in FLOWS.values()})
    deployments = register()
    automation = ensure_zombie_automation()
    for pool, what in pools.items():
        say(f"pool {pool} ({POOL_TYPES.get(pool, 'process')}): {what}")
    for name, deployment_id in deployments.items():
        say(f"deployment {name}/{name}: {deployment_id}")
    say(f"automation {ZOMBIE_AUTOMATION!r}: {automation}")
    say(f"service user {SERVICE_USER}: {service_user}")
