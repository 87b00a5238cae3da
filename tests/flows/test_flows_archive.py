"""The archive flows on a real Prefect server: a dry run's artifact shows what would move
and the bytes per tier; a run moves; archive-restore brings versions back; the review-media
flow restores an archived version before it reads its frames."""

from __future__ import annotations

from bifrost_core.lifecycle import moves, restores
from bifrost_core.scope import SYSTEM
from tests.support.archive import blobs_of, set_policy, three_versions, tiers_of
from tests.support.ingest import OPERATOR
from tests.support.media import png_frames, publish
from tests.support.runs import read_run


def artifact(api: str, state, key: str) -> str:
    _, artifacts = read_run(api, state.state_details.flow_run_id)
    return {item.key: item for item in artifacts}[key].data


def test_archive_flow_dry_run_run_and_restore(
    database, production, settings, flow_env, prefect_server, tmp_path
):
    from flows.archive import archive, archive_all, archive_restore

    v1, v2, v3 = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=1)
    dry = archive(actor=OPERATOR, project="DEMO", dry_run=True, return_state=True)
    assert dry.is_completed()
    text = artifact(prefect_server, dry, "archive-demo")
    assert text.startswith("# Archive (dry run: nothing moved)")
    assert "| archive | 24,576 | 0 |" in text and "| hot | 0 | 24,576 |" in text
    assert f"| {v1} | superseded | 3 | 12,288 |" in text and f"\n| {v3} | superseded" not in text
    assert restores.archived_state(database, [v1, v2, v3]) == {}

    done = archive_all(actor=OPERATOR, return_state=True)
    assert done.is_completed()
    assert "2 version(s) moved" in artifact(prefect_server, done, "archive-all-studio")
    assert restores.archived_state(database, [v1, v2, v3]) == {v1: "archive", v2: "archive"}

    restored = archive_restore(actor=OPERATOR, project="DEMO", versions=[v1], return_state=True)
    assert restored.is_completed()
    assert f"| {v1} | restored | archive | 3 |" in artifact(prefect_server, restored, "archive-restore-demo")
    assert all("hot" in tiers_of(database, digest) for digest in blobs_of(database, v1))


def test_review_media_restores_an_archived_version_first(
    database, production, settings, flow_env, prefect_server, tmp_path, ffmpeg_installed
):
    from flows.review import review_media

    old = publish(database, settings, png_frames(tmp_path / "old", 3, size=(64, 36)))
    publish(database, settings, png_frames(tmp_path / "new", 3, size=(64, 36), colour=(90, 10, 10)))
    set_policy(database, settings, production.project_id, keep_latest=1)
    moves.archive_project(database, settings, actor=SYSTEM, project="DEMO")
    assert all(set(tiers_of(database, digest)) == {"archive"} for digest in blobs_of(database, old))

    state = review_media(actor=OPERATOR, project="DEMO", versions=[old], return_state=True)
    assert state.is_completed(), state.message
    assert state.result().outcomes[0].result.created
    assert all("hot" in tiers_of(database, digest) for digest in blobs_of(database, old))
    assert restores.archived_state(database, [old]) == {}
