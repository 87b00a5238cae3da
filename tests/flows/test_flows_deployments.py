"""The registry's deployments on the work pools of a real Prefect server, prefect.yaml
generated from the registry (the committed file must be the generated one), the zombie-run
automation and the service user `bifrost deploy` sets up, and the Kubernetes/ECS base job
templates (accepted by a real server for pools of those types)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SERVICE_USER
from bifrost_core.users.models import ApiToken, User
from bifrost_core.users.permissions import ACTIONS
from cli.main import app
from deployments.automations import ZOMBIE_AUTOMATION, ZOMBIE_MESSAGE, ZOMBIE_WINDOW
from deployments.flows import PREFECT_YAML, PULL_STEPS, deployment_spec, prefect_yaml
from deployments.pools import templates
from flows.registry import ADMIN_ONLY, FLOWS, GPU_POOL, PROJECT, ROOT, STUDIO, WORK_POOL, FlowEntry


def test_every_entry_names_a_permission_and_takes_its_caller_parameters() -> None:
    for entry in FLOWS.values():
        fields = set(entry.parameters_model().model_fields)
        body = set(entry.body_model().model_fields)
        if entry.scope == PROJECT:
            assert entry.action in ACTIONS, entry.name
            assert {"actor", "project"} <= fields, entry.name
        else:
            assert entry.scope == STUDIO and entry.action == ADMIN_ONLY, entry.name
            assert "actor" in fields and "project" not in fields, entry.name
        assert not {"actor", "project"} & body, entry.name
    assert {"verify", "storage-gc"} <= {name for name, entry in FLOWS.items() if entry.scope == STUDIO}


def test_scheduled_upkeep_acts_as_the_service_user() -> None:
    (nightly,) = FLOWS["verify"].schedules
    (weekly,) = FLOWS["storage-gc"].schedules
    assert nightly == {"cron": "0 2 * * *", "parameters": {"actor": SERVICE_USER}}
    assert weekly == {"cron": "0 4 * * 0", "parameters": {"actor": SERVICE_USER, "dry_run": True}}
    # Every schedule's parameters are valid parameters of its flow (the server enforces them).
    for entry in FLOWS.values():
        for schedule in entry.schedules:
            entry.parameters_model().model_validate(schedule["parameters"])


def test_bifrost_flow_list_shows_scopes_and_schedules() -> None:
    table = CliRunner().invoke(app, ["flow", "list"], env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    verify = next(line for line in table.output.splitlines() if line.startswith("│ verify "))
    assert [cell.strip() for cell in verify.strip("│").split("│")] == [
        "verify",
        "studio",
        "admin",
        WORK_POOL,
        "1",
        "0 2 * * * UTC",
    ]
    listed = {
        row["name"]: row for row in json.loads(CliRunner().invoke(app, ["flow", "list", "--json"]).output)
    }
    assert listed["ingest"]["scope"] == "project" and listed["ingest"]["schedules"] == []
    assert listed["storage-gc"]["schedules"] == [
        {"when": "0 4 * * 0 UTC", "parameters": {"actor": SERVICE_USER, "dry_run": True}}
    ]


def test_the_registry_is_read_without_prefect() -> None:
    """The API and the CLI read the registry at start-up: it must not import Prefect."""
    code = "import sys, flows.registry; assert 'prefect' not in sys.modules, 'prefect imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_committed_prefect_yaml_is_the_one_the_registry_generates() -> None:
    assert PREFECT_YAML.read_text() == prefect_yaml()
    document = yaml.safe_load(PREFECT_YAML.read_text())
    declared = document["deployments"]
    assert declared == [deployment_spec(entry) for entry in FLOWS.values()]
    # publish is its own flow, not an ingest.
    assert "ingest" not in next(d for d in declared if d["name"] == "publish")["tags"]
    # Every deployment runs from the worker's clone, named by the worker's environment.
    assert document["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $BIFROST_CHECKOUT }}"}}
    ]
    assert {d["work_pool"]["name"] for d in declared} <= {WORK_POOL, GPU_POOL}
    assert "bifrost-process" not in PREFECT_YAML.read_text()


def test_schedules_and_triggers_are_carried_into_prefect_yaml() -> None:
    entry = FlowEntry(
        name="nightly",
        entrypoint="flows/ingest.py:ingest",
        action="flows.ingest",
        description="A nightly ingest",
        schedules=({"cron": "0 3 * * *", "timezone": "Europe/Paris"},),
        triggers=({"enabled": True, "match": {"prefect.resource.id": "bifrost.delivery"}, "expect": ["x"]},),
    )
    (declared,) = yaml.safe_load(prefect_yaml([entry]))["deployments"]
    assert declared["schedules"] == [{"cron": "0 3 * * *", "timezone": "Europe/Paris"}]
    assert declared["triggers"][0]["expect"] == ["x"]


def test_bifrost_deploy_sets_up_pools_deployments_automation_and_service_user(
    database, production, flow_env, prefect_server, monkeypatch
) -> None:
    """One command makes the pools, the deployments as prefect.yaml says, the zombie-run
    automation and the service user; a rerun changes nothing and makes no second of any."""
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"pool {WORK_POOL} (process): created" in lines or f"pool {WORK_POOL} (process): exists" in lines
    assert any(line.startswith(f"pool {GPU_POOL} (process): ") for line in lines)
    for name in FLOWS:
        assert sum(line.startswith(f"deployment {name}/{name}: ") for line in lines) == 1, name
    assert f"service user {SERVICE_USER}: created" in lines
    assert any(line.startswith(f"automation {ZOMBIE_AUTOMATION!r}: ") for line in lines)
    assert len(lines) == 2 + len(FLOWS) + 2  # one line each

    again = CliRunner().invoke(app, ["deploy"])
    assert again.exit_code == 0, again.output
    assert f"pool {WORK_POOL} (process): exists" in again.output
    assert f"service user {SERVICE_USER}: exists" in again.output
    assert f"automation {ZOMBIE_AUTOMATION!r}: unchanged" in again.output

    async def read():
        async with get_client() as client:
            pools = {name: await client.read_work_pool(name) for name in (WORK_POOL, GPU_POOL)}
            found = {name: await client.read_deployment_by_name(e.deployment) for name, e in FLOWS.items()}
            automations = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
            return pools, found, automations

    pools, deployments, automations = asyncio.run(read())
    assert {name: pool.type for name, pool in pools.items()} == {WORK_POOL: "process", GPU_POOL: "process"}
    declared = {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}
    for name, deployment in deployments.items():
        spec = declared[name]
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.work_pool_name == spec["work_pool"]["name"]
        assert sorted(deployment.tags) == sorted(spec["tags"])
        assert deployment.description == spec["description"]
        limit = deployment.global_concurrency_limit
        assert (limit and limit.limit) == spec["concurrency_limit"]
        assert deployment.parameters == spec["parameters"]
        assert deployment.enforce_parameter_schema is spec["enforce_parameter_schema"]
        # The pull step keeps its placeholder: the worker resolves it, at each run.
        assert deployment.pull_steps == PULL_STEPS
        assert deployment.path is None
        # Cron or interval (seconds), as the registry writes them (Prefect keeps no order among
        # a deployment's schedules).
        served = [
            (getattr(s.schedule, "cron", None) or s.schedule.interval.total_seconds(), s.parameters)
            for s in deployment.schedules
        ]
        scheduled = [(s.get("cron") or s["interval"], s["parameters"]) for s in spec["schedules"]]
        assert sorted(served, key=repr) == sorted(scheduled, key=repr)
        # Flat typed parameters: the Prefect UI's form is one level, and asks for the actor.
        schema = deployment.parameter_openapi_schema
        assert set(schema["properties"]) == set(FLOWS[name].parameters_model().model_fields)
        # (the project is optional only to a flow over every project, e.g. the render queue)
        model = FLOWS[name].parameters_model()
        assert set(schema["required"]) == {n for n, f in model.model_fields.items() if f.is_required()}
        assert "actor" in schema["required"]
    assert deployments["ingest"].parameter_openapi_schema["properties"]["batch_files"]["maximum"] == 100_000
    assert "project" not in deployments["verify"].parameter_openapi_schema["properties"]

    # The automation: Prefect's recipe for zombie runs, once.
    (automation,) = automations
    trigger = automation.trigger
    assert automation.enabled
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {"prefect.flow-run.*"}
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.match.model_dump() == {"prefect.resource.id": ["prefect.flow-run.*"]}
    assert trigger.threshold == 1 and trigger.within == ZOMBIE_WINDOW
    (action,) = automation.actions
    assert (action.type, action.state.value, action.message) == (
        "change-flow-run-state",
        "CRASHED",
        ZOMBIE_MESSAGE,
    )

    # Gone again: with its 90 s window, the session's later in-process runs (Prefect's default
    # heartbeat, 180 s) could be taken for zombies.
    asyncio.run(remove_automation(automation.id))

    # The service user: an admin nobody logs in as (no token).
    with UnitOfWork(database) as uow:
        user = uow.session.scalar(select(User).where(User.username == SERVICE_USER))
        assert user.is_admin and user.is_active
        assert uow.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id)) is None


async def remove_automation(automation_id) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        await client.delete_automation(automation_id)


def test_bifrost_deploy_by_a_non_admin_changes_nothing(
    database, production, flow_env, prefect_server, monkeypatch
) -> None:
    from bifrost_core.scope import SYSTEM
    from bifrost_core.users import service as users
    from bifrost_core.users.schemas import UserCreate

    with UnitOfWork(database) as uow:
        users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username="pat"))
        uow.commit()
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("BIFROST_USER", "pat")
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 6, result.output
    assert result.output.strip() == "error: only an admin can create users"
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(User).where(User.username == SERVICE_USER)) is None


def test_bifrost_init_makes_the_service_user_once(database, settings, flow_env) -> None:
    from bifrost_core.bootstrap import initialise

    first = initialise(settings)
    first.database.dispose()
    second = initialise(settings)
    second.database.dispose()
    assert (first.service_user, second.service_user) == ("created", None)
    with UnitOfWork(database) as uow:
        user = uow.session.scalar(select(User).where(User.username == SERVICE_USER))
        assert user.is_admin and user.is_active


@pytest.mark.parametrize("kind", templates.TYPES)
def test_pool_templates_start_from_prefects_defaults(kind: str) -> None:
    committed = json.loads(templates.path(kind).read_text())
    assert templates.path(kind).read_text() == templates.text(kind)
    default = templates.prefect_default(kind)
    # Prefect's own variables are all there, and its job configuration's keys.
    assert set(default["variables"]["properties"]) <= set(committed["variables"]["properties"])
    assert set(default["job_configuration"]) == set(committed["job_configuration"])
    variables = committed["variables"]["properties"]
    assert variables["image"]["default"] == templates.IMAGE
    assert variables["command"]["default"] == "prefect flow-run execute"
    assert variables["env"]["default"] == {
        "BIFROST_CHECKOUT": "/opt/bifrost",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }


@pytest.mark.parametrize("kind", templates.TYPES)
def test_a_real_server_takes_each_pool_template(kind: str, prefect_api: str) -> None:
    """Created as a pool of its type, it is read back as given; the server checks that every
    placeholder of the job configuration is a declared variable (a broken template is refused)."""
    template = json.loads(templates.path(kind).read_text())
    name = f"bifrost-test-{kind}"
    with httpx.Client(base_url=prefect_api, timeout=30) as client:
        client.delete(f"/work_pools/{name}")
        created = client.post(
            "/work_pools/", json={"name": name, "type": kind, "base_job_template": template}
        )
        assert created.status_code == 201, created.text
        read = client.get(f"/work_pools/{name}").json()
        assert read["type"] == kind
        assert read["base_job_template"] == template
        secret = {"kubernetes": "bifrost_env_secret", "ecs": "bifrost_secrets"}[kind]
        assert {"image", "env", "command", secret} <= set(
            read["base_job_template"]["variables"]["properties"]
        )

        broken = json.loads(json.dumps(template))
        del broken["variables"]["properties"][secret]
        refused = client.post(
            "/work_pools/", json={"name": f"{name}-broken", "type": kind, "base_job_template": broken}
        )
        assert refused.status_code == 422, refused.text
        client.delete(f"/work_pools/{name}")
