"""The ingest and publish deployments on a process work pool of a real Prefect server."""

from __future__ import annotations

import asyncio

import yaml

from deployments.ingest import DEPLOYMENTS, ROOT, WORK_POOL, register


def test_deployments_register_with_typed_parameter_forms(prefect_server):
    from prefect.client.orchestration import get_client

    ids = register()
    assert set(ids) == {"ingest", "publish"}

    async def read():
        async with get_client() as client:
            pool = await client.read_work_pool(WORK_POOL)
            return pool, [await client.read_deployment(deployment_id) for deployment_id in ids.values()]

    pool, deployments = asyncio.run(read())
    assert pool.type == "process"
    by_name = {deployment.name: deployment for deployment in deployments}
    # Pydantic parameters become a JSON schema: the Prefect UI renders it as a form.
    ingest_schema = by_name["ingest"].parameter_openapi_schema
    assert ingest_schema["required"] == ["params"]
    assert {"project", "source", "tier", "dry_run"} <= set(
        ingest_schema["definitions"]["IngestParameters"]["properties"]
    )
    assert "PublishRequest" in by_name["publish"].parameter_openapi_schema["definitions"]
    # Who starts a run is a required field of the form, which no deployment fills for them.
    for name, model in (("ingest", "IngestParameters"), ("publish", "PublishRequest")):
        assert "actor" in by_name[name].parameter_openapi_schema["definitions"][model]["required"]
        assert by_name[name].parameters == {}
    assert all(deployment.work_pool_name == WORK_POOL for deployment in deployments)

    # prefect.yaml declares the same deployments for `prefect deploy --all`.
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert [(d["name"], d["entrypoint"]) for d in declared] == [
        (name, entry) for name, entry, _, _ in DEPLOYMENTS
    ]
    assert all(d["parameters"] == {} for d in declared)
