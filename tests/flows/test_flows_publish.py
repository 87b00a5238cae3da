"""The publish flow against a real Prefect server: versions, artifacts, reruns."""

from __future__ import annotations

import asyncio

from ingest_helpers import frames, write
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.schemas import PublishRequest
from bifrost_core.versions.models import Version


def read_run(api: str, flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def fetch():
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return run, artifacts

    return asyncio.run(fetch())


def test_publish_frames_and_movie_then_rerun(database, production, flow_env, prefect_server, tmp_path):
    from flows.publish import publish

    paths = frames(tmp_path / "work", "comp", 1001, 1005)
    movie = write(tmp_path / "work" / "comp.mov", b"mov" * 999)
    request = PublishRequest(
        project="DEMO",
        sequence="sq010",
        shot="sh010",
        task="comp",
        comment="first pass",
        files=[str(p) for p in [*paths, movie]],
        frame_in=1001,
        frame_out=1005,
        meta={"dcc": "nuke"},
    )
    state = publish(request, return_state=True)
    summary = state.result()
    assert [(v.target, v.number, v.representations, v.files) for v in summary.created] == [
        ("sq010/sh010 comp main", 1, 2, 6)
    ]
    with UnitOfWork(database) as uow:
        version = uow.session.get(Version, summary.created[0].version_id)
        reps = {rep.name: rep for rep in version.representations}
        assert version.comment == "first pass"
        assert version.meta["dcc"] == "nuke"
        assert (reps["comp"].kind, reps["comp"].frame_in, reps["comp"].frame_out) == ("frames", 1001, 1005)
        assert (reps["comp.mov"].kind, reps["comp.mov"].frame_in) == ("movie", None)

    run, artifacts = read_run(prefect_server, state.state_details.flow_run_id)
    assert run.state.is_completed()
    kinds = {artifact.key: artifact for artifact in artifacts}
    assert "publish-demo" in kinds and "publish-demo-versions" in kinds
    assert "sq010/sh010 comp main" in str(kinds["publish-demo-versions"].data)

    again = publish(request)
    assert (again.created, again.known) == ([], 1)
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Version)) == 1
