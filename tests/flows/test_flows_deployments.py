"""The registry's deployments on a process work pool of a real Prefect server, and
prefect.yaml generated from the registry (the committed file must be the generated one)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from bifrost_core.users.permissions import ACTIONS
from cli.main import app
from deployments.flows import PREFECT_YAML, deployment_spec, prefect_yaml
from flows.registry import FLOWS, ROOT, FlowEntry


def test_every_entry_names_a_permission_and_takes_actor_and_project() -> None:
    for entry in FLOWS.values():
        assert entry.action in ACTIONS, entry.name
        assert {"actor", "project"} <= set(entry.parameters_model().model_fields), entry.name
        assert not {"actor", "project"} & set(entry.body_model().model_fields), entry.name


def test_the_registry_is_read_without_prefect() -> None:
    """The API and the CLI read the registry at start-up: it must not import Prefect."""
    code = "import sys, flows.registry; assert 'prefect' not in sys.modules, 'prefect imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_committed_prefect_yaml_is_the_one_the_registry_generates() -> None:
    assert PREFECT_YAML.read_text() == prefect_yaml()
    declared = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    assert declared == [deployment_spec(entry) for entry in FLOWS.values()]
    # publish is its own flow, not an ingest.
    assert "ingest" not in next(d for d in declared if d["name"] == "publish")["tags"]


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


def test_bifrost_deploy_creates_the_pool_and_every_deployment(prefect_server, monkeypatch) -> None:
    """On a fresh server: no pool, no deployments; one command makes both, as prefect.yaml says."""
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 0, result.output
    assert "deployment ingest/ingest:" in result.output and "deployment publish/publish:" in result.output
    assert CliRunner().invoke(app, ["deploy"]).exit_code == 0  # again: the pool exists, no error

    async def read():
        async with get_client() as client:
            pools = [await client.read_work_pool(name) for name in {e.work_pool for e in FLOWS.values()}]
            found = {name: await client.read_deployment_by_name(e.deployment) for name, e in FLOWS.items()}
            return pools, found

    pools, deployments = asyncio.run(read())
    assert {pool.type for pool in pools} == {"process"}
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
        assert len(deployment.schedules) == len(spec["schedules"])
        # Flat typed parameters: the Prefect UI's form is one level, and asks for the actor.
        schema = deployment.parameter_openapi_schema
        assert set(schema["properties"]) == set(FLOWS[name].parameters_model().model_fields)
        # (the project is optional only to a flow over every project, e.g. the render queue)
        model = FLOWS[name].parameters_model()
        assert set(schema["required"]) == {n for n, f in model.model_fields.items() if f.is_required()}
        assert "actor" in schema["required"]
    assert deployments["ingest"].parameter_openapi_schema["properties"]["batch_files"]["maximum"] == 100_000
