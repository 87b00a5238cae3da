"""`bifrost archive`: policy, run (dry and real), restore by version, shot and playlist, a
cold tier's message, and each bad input as one line and its exit code."""

from __future__ import annotations

import json

import pytest

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.lifecycle import restores
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.schemas import PlaylistCreate
from bifrost_core.scope import SYSTEM
from tests.support.archive import blobs_of, three_versions, tiers_of
from tests.support.ingest import OPERATOR
from tests.support.runs import invoke


@pytest.fixture
def cli_env(monkeypatch, settings):
    for name, value in {
        "BIFROST_HOME": str(settings.home),
        "BIFROST_DATABASE_URL": settings.database,
        "BIFROST_HOT_ROOT": settings.tier_roots["hot"],
        "BIFROST_ARCHIVE_ROOT": settings.tier_roots["archive"],
        "BIFROST_USER": OPERATOR,
    }.items():
        monkeypatch.setenv(name, value)


def test_archive_commands(database, production, settings, cli_env, tmp_path, monkeypatch):
    v1, v2, v3 = three_versions(database, settings, tmp_path)
    out = invoke("archive", "policy", "set", "DEMO", "--keep-latest", "1").output
    assert "all but the latest 1 versions of each task and variant" in out
    assert (
        json.loads(invoke("archive", "policy", "show", "DEMO", "--json").output)["rules"]["keep_latest"] == 1
    )

    dry = invoke("archive", "run", "--project", "DEMO", "--dry-run").output
    assert "2 version(s) would move to archive" in dry and "24,576" in dry
    assert restores.archived_state(database, [v1, v2]) == {}
    moved = json.loads(invoke("archive", "run", "--json").output)
    assert [m["version_id"] for m in moved[0]["versions"]] == [v1, v2]
    assert restores.archived_state(database, [v1, v2, v3]) == {v1: "archive", v2: "archive"}

    assert (
        f"version {v1}: restored from archive (3 blob(s)"
        in invoke("archive", "restore", "--version", v1).output
    )
    assert f"version {v1}: already hot" in invoke("archive", "restore", "--version", v1).output
    shot = invoke("archive", "restore", "--shot", "sq010/sh010", "-p", "DEMO").output
    assert f"version {v2}: restored" in shot and f"version {v3}: already hot" in shot

    invoke("archive", "run", "-p", "DEMO")  # the restored ones are held hot: nothing moves
    assert restores.archived_state(database, [v1, v2, v3]) == {}

    # A playlist's versions, from a cold tier: not ready yet, exit 4 and when it will be.
    with UnitOfWork(database) as uow:
        from sqlalchemy import delete

        from bifrost_core.lifecycle.models import ArchivedVersion

        uow.session.execute(delete(ArchivedVersion))
        playlist = reviews.create_playlist(
            uow.session,
            actor=SYSTEM,
            project_id=production.project_id,
            data=PlaylistCreate(name="dailies", version_ids=[v1]),
        )
        uow.commit()
        playlist_id = playlist.id
    invoke("archive", "run", "-p", "DEMO")
    monkeypatch.setenv("BIFROST_TIER_RESTORE_DELAYS", '{"archive": 600}')
    pending = invoke("archive", "restore", "--playlist", playlist_id, code=4).output
    assert f"restoring: version {v1} is archived in tier archive: restoring, ready in 10 min" in pending
    assert all("hot" not in tiers_of(database, digest) for digest in blobs_of(database, v1))


def test_archive_bad_input(database, production, settings, cli_env, tmp_path):
    three_versions(database, settings, tmp_path)
    assert (
        "keep_latest: Input should be greater than or equal to 1"
        in invoke("archive", "policy", "set", "DEMO", "--keep-latest", "0", code=5).output
    )
    assert (
        "has no storage tier 'glacier'"
        in invoke(
            "archive", "policy", "set", "DEMO", "--keep-latest", "1", "--tier", "glacier", code=5
        ).output
    )
    assert "not found" in invoke("archive", "policy", "show", "NOPE", code=3).output
    assert "name what to restore" in invoke("archive", "restore", code=2).output
    assert "--shot takes SEQUENCE/SHOT" in invoke("archive", "restore", "--shot", "sh010", code=2).output
    assert "not found" in invoke("archive", "restore", "--version", 999, code=3).output
    assert "--force archives one project at a time" in invoke("archive", "run", "--force", code=2).output
    invoke("archive", "final", "sq010/sh010", "-p", "DEMO")
    invoke("archive", "policy", "set", "DEMO", "--final-shot-after", "0")
    refused = invoke("archive", "run", "-p", "DEMO", code=4).output
    assert refused.strip() == (
        "error: the archive policy of project DEMO would archive all 3 of its hot versions: "
        "run it with --force to archive them all"
    )
    assert "3 version(s) moved" in invoke("archive", "run", "-p", "DEMO", "--force").output


def test_an_unreachable_archive_tier_is_one_line_and_exit_8(
    database, production, settings, cli_env, tmp_path, monkeypatch
):
    from tests.support.archive import set_policy
    from tests.support.services import free_port

    versions = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=1)
    monkeypatch.setenv("BIFROST_ARCHIVE_ROOT", "s3://nowhere/archive")
    monkeypatch.setenv(
        "BIFROST_STORAGE_OPTIONS",
        json.dumps(
            {
                "s3://nowhere": {
                    "endpoint_url": f"http://127.0.0.1:{free_port()}",
                    "key": "k",
                    "secret": "s",
                    "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
                }
            }
        ),
    )
    out = invoke("archive", "run", "-p", "DEMO", code=8).output.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: storage tier archive")
    assert restores.archived_state(database, versions) == {}
