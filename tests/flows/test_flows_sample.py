"""README "Adding a flow", step by step, with the sample flow tests/flows/sample/hello.py:
one module plus one registry entry, and the flow is in `bifrost deploy` (the Prefect UI),
the API (its parameters validated) and `bifrost flow run`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.runs.models import FlowRun
from bifrost_core.users import service as users
from bifrost_core.users.repository import UserRepository
from bifrost_core.users.schemas import TokenCreate
from cli.main import app
from deployments.flows import prefect_yaml
from flows import registry
from flows.registry import FlowEntry
from tests.support.ingest import OPERATOR

ROOT = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).parent / "prefect"
# The README's step 2: the registry entry.
HELLO = FlowEntry(
    name="hello",
    entrypoint="tests/flows/sample/hello.py:hello",
    action="flows.publish",
    description="Greet a project",
    concurrency_limit=2,
)


@pytest.fixture
def hello(monkeypatch) -> FlowEntry:
    monkeypatch.setitem(registry.FLOWS, HELLO.name, HELLO)
    return HELLO


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    return result.output


# What a TD adds is the same on either database; the embedded default is where one starts.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_new_flow_is_one_module_and_one_entry(
    hello, database, production, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    # It is in `bifrost flow list`, and its parameters come from its signature.
    assert "hello" in [row["name"] for row in json.loads(invoke("flow", "list", "--json"))]
    shown = json.loads(invoke("flow", "show", "hello", "--json"))
    assert set(shown["properties"]) == {"greeting", "times"}
    assert shown["properties"]["greeting"]["description"] == "What to say"
    # `bifrost flow run`: here, in this process, as the operator.
    given = ["--param", "greeting=hi", "--param", "times=2"]
    out = invoke("flow", "run", "hello", "-p", "DEMO", *given, "--json")
    assert json.loads(out) == "hi DEMO hi DEMO", out
    assert "times" in invoke("flow", "run", "hello", "-p", "DEMO", "--param", "times=9", code=5)
    assert "bogus" in invoke("flow", "run", "hello", "-p", "DEMO", "--param", "bogus=1", code=5)

    # `bifrost deploy`: its deployment on the server (the Prefect UI), and in prefect.yaml.
    assert "deployment hello/hello:" in invoke("deploy")
    assert "hello" in [d["name"] for d in yaml.safe_load(prefect_yaml())["deployments"]]

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name("hello/hello")

    deployment = asyncio.run(read())
    assert deployment.entrypoint == HELLO.entrypoint
    assert set(deployment.parameter_openapi_schema["properties"]) == {"actor", "project", "greeting", "times"}

    # `prefect deploy --all` from the generated prefect.yaml makes the same deployment (once
    # `bifrost deploy` has made the pools, which prefect deploy does not).
    async def delete():
        async with get_client() as client:
            await client.delete_deployment(deployment.id)

    asyncio.run(delete())
    (tmp_path / "prefect.yaml").write_text(prefect_yaml())
    deployed = subprocess.run(
        [str(PREFECT), "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    again = asyncio.run(read())
    assert (again.entrypoint, again.global_concurrency_limit.limit, again.enforce_parameter_schema) == (
        HELLO.entrypoint,
        2,
        True,
    )
    assert again.parameter_openapi_schema == deployment.parameter_openapi_schema

    # `bifrost flow run --deployment`: a run of the deployment, for a worker of its pool.
    queued = json.loads(invoke("flow", "run", "hello", "-p", "DEMO", "--deployment", "--json"))

    # The API: its route validates the body against the flow's parameters and starts a run.
    with UnitOfWork(database) as uow:
        user = UserRepository(uow.session).by_username(OPERATOR)
        actor = users.actor_for_user(uow.session, user)
        issued = users.create_token(uow.session, actor=actor, user_id=user.id, data=TokenCreate(name="hi"))
        token = issued.token
        project_id = ProjectRepository(uow.session).by_code("DEMO").id
        uow.commit()
    headers = {"Authorization": f"Bearer {token}"}
    api = create_app(load_settings(), database=database, cache=LocalCache())
    with TestClient(api, raise_server_exceptions=False) as client:
        url = f"/projects/{project_id}/flows/hello/runs"
        for bad in ({"times": 0}, {"greeting": ""}, {"bogus": 1}, {"actor": "someone-else"}):
            assert client.post(url, json=bad, headers=headers).status_code == 422, bad
        unknown = client.post(f"/projects/{project_id}/flows/nope/runs", json={}, headers=headers)
        assert unknown.status_code == 404
        started = client.post(url, json={"greeting": "hey"}, headers=headers)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert client.get(f"/flow-runs/{run_id}", headers=headers).json()["state"] == "SCHEDULED"
        listed = client.get(f"/projects/{project_id}/flow-runs", headers=headers).json()["items"]
    # Every run is Bifrost's: the one `flow run` ran here recorded itself when it began.
    assert [item["flow"] for item in listed] == ["hello"] * 3
    assert {run_id, queued["run_id"]} < {item["run_id"] for item in listed}
    with UnitOfWork(database) as uow:
        assert all(run.run_id for run in uow.session.query(FlowRun))

    # The run named from its parameters, tagged with its project for the Prefect UI's filter.
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ours = {item["run_id"] for item in listed}
    with get_client(sync_client=True) as client:
        local = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=sorted(ours))))
    local = [run for run in local if run.state_type.value == "COMPLETED"]
    assert [(run.name, "project:DEMO" in run.tags) for run in local] == [("hello DEMO hi", True)]

    # A flow taken out of the registry: its runs still read (whoever may start some flow).
    monkeypatch.delitem(registry.FLOWS, "hello")
    with TestClient(api, raise_server_exceptions=False) as client:
        assert client.get(f"/flow-runs/{run_id}", headers=headers).json()["flow"] == "hello"
        refused = client.post(url, json={"greeting": "hey"}, headers=headers)
        assert refused.status_code == 404 and "no flow named 'hello'" in refused.text
