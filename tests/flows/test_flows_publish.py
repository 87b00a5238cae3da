"""The publish flow against a real Prefect server: versions, artifacts, reruns."""

from __future__ import annotations

from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.storage.models import BlobLocation
from bifrost_core.versions.models import Version
from tests.support.ingest import OPERATOR, frames, write
from tests.support.runs import read_run


def test_publish_frames_and_movie_then_rerun(database, production, flow_env, prefect_server, tmp_path):
    from flows.publish import publish

    paths = frames(tmp_path / "work", "comp", 1001, 1005)
    movie = write(tmp_path / "work" / "comp.mov", b"mov" * 999)
    request = dict(
        actor=OPERATOR,
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
    state = publish(**request, return_state=True)
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
    # Progress as the Prefect UI shows it: 100 % once stored.
    assert kinds["publish-demo-progress"].type == "progress"
    assert kinds["publish-demo-progress"].data == 100.0
    assert "sq010/sh010 comp main" in str(kinds["publish-demo-versions"].data)

    again = publish(**request)
    assert (again.created, again.known) == ([], 1)
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Version)) == 1


def test_publish_and_ingest_flows_into_an_s3_tier(
    database, production, flow_env, s3_settings, prefect_server, delivery, tmp_path, monkeypatch
):
    from bifrost_core.ingest import upkeep
    from flows.ingest import ingest
    from flows.publish import publish

    monkeypatch.setenv("BIFROST_HOT_ROOT", s3_settings.tier_roots["hot"])
    paths = frames(tmp_path / "work", "comp", 1001, 1003)
    published = publish(
        actor=OPERATOR,
        project="DEMO",
        asset="chair",
        task="look",
        files=[str(p) for p in paths],
        comment="s3",
    )
    assert [(v.target, v.number) for v in published.created] == [("asset chair look main", 1)]
    ingested = ingest(actor=OPERATOR, project="DEMO", source=str(delivery))
    assert len(ingested.created) == 3
    assert ingest(actor=OPERATOR, project="DEMO", source=str(delivery)).known == 3
    report = upkeep.verify(database, s3_settings)
    # sh020's five plate frames have the bytes of sh010's first five: stored once.
    assert report.ok and report.checked == 3 + 10 + 1 + 1
    with UnitOfWork(database) as uow:
        urls = uow.session.scalars(select(BlobLocation.url)).all()
    assert all(url.startswith(s3_settings.tier_roots["hot"] + "/blobs/") for url in urls)
