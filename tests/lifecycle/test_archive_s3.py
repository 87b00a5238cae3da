"""Archive to a real S3 endpoint (moto's server) and restore from it; kill -9 at each step
of a move and of a restore, then a rerun; a cold tier's restore delay; an unreachable
endpoint."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import boto3
import pytest
from sqlalchemy import update

from bifrost_core.config import load_settings
from bifrost_core.db.base import utcnow
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError
from bifrost_core.lifecycle import moves, restores
from bifrost_core.lifecycle.models import RestoreRequest
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import s3 as s3_tier
from bifrost_core.storage.errors import StorageError
from tests.support.archive import (
    CHILD,
    blobs_of,
    corrupt_on_arrival,
    good_copies,
    published_paths,
    set_policy,
    store_of,
    three_versions,
    tiers_of,
)
from tests.support.ingest import ROOT, assert_sound, child_env
from tests.support.services import free_port

ARCHIVE_STEPS = ["archive:copied", "archive:verified", "archive:recorded", "archive:unlinked"]
RESTORE_STEPS = ["restore:copied", "restore:recorded"]


@pytest.fixture
def s3_archive(s3_endpoint, tmp_path, database, monkeypatch):
    """Settings with a local hot tier and the archive tier on S3 (a fresh prefix)."""
    for name, value in s3_endpoint.env().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "tiers" / "hot").mkdir(parents=True)
    return load_settings(
        home=tmp_path / "home",
        database_url=database.url,
        hot_root=str(tmp_path / "tiers" / "hot"),
        archive_root=s3_endpoint.url(f"archive-{tmp_path.name}-{id(tmp_path):x}"),
    )


def _every_blob_has_a_good_copy(database, settings, versions):
    for version in versions:
        for digest in blobs_of(database, version):
            assert good_copies(settings, database, digest), (
                f"blob {digest} of version {version} has no good copy"
            )


def _child(database, settings, kill_at, *args):
    return subprocess.run(
        [*CHILD, *args],
        cwd=ROOT,
        env=child_env(database, settings, kill_at),
        capture_output=True,
        timeout=120,
    )


def test_archive_to_s3_and_restore_from_it(database, production, s3_archive, tmp_path):
    v1, v2, v3 = three_versions(database, s3_archive, tmp_path)
    set_policy(database, s3_archive, production.project_id, keep_latest=1)
    report = moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    assert report.failures == [] and report.blobs_released == 6
    archive = store_of(s3_archive, "archive")
    for digest in blobs_of(database, v1) | blobs_of(database, v2):
        assert tiers_of(database, digest)["archive"].startswith("s3://")
        assert archive.rehash(digest) == digest
        assert not store_of(s3_archive, "hot").exists(digest)
    # An archived file's published path says where it went and how to bring it back.
    published = next((s3_archive.home.parent / "tiers" / "hot" / "published").rglob("plate.1001.exr"))
    marks = sorted(
        str(path.readlink()) for path in published.parent.parent.parent.rglob("*.exr") if path.is_symlink()
    )
    assert f"ARCHIVED in tier archive: run `bifrost archive restore --version {v1}`" in marks
    assert_sound(database, s3_archive)

    restored = restores.restore_versions(database, s3_archive, actor=SYSTEM, version_ids=[v2])
    assert [o.state for o in restored.outcomes] == ["restored"]
    for digest in blobs_of(database, v2):
        assert set(tiers_of(database, digest)) == {"hot", "archive"}
    assert restores.archived_state(database, [v1, v2, v3]) == {v1: "archive"}
    assert_sound(database, s3_archive)


@pytest.mark.parametrize("step", ARCHIVE_STEPS)
def test_kill_9_during_a_move_then_a_rerun_completes_it(database, production, s3_archive, tmp_path, step):
    versions = three_versions(database, s3_archive, tmp_path)
    set_policy(database, s3_archive, production.project_id, keep_latest=1)
    killed = _child(database, s3_archive, step, "archive", "DEMO")
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    _every_blob_has_a_good_copy(database, s3_archive, versions)

    report = moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    assert report.failures == []
    assert restores.archived_state(database, versions) == {versions[0]: "archive", versions[1]: "archive"}
    for version in versions[:2]:
        for digest in blobs_of(database, version):
            assert set(tiers_of(database, digest)) == {"archive"}
            assert not store_of(s3_archive, "hot").exists(digest)
    _every_blob_has_a_good_copy(database, s3_archive, versions)
    assert_sound(database, s3_archive)


@pytest.mark.parametrize("step", RESTORE_STEPS)
def test_kill_9_during_a_restore_then_a_rerun_completes_it(database, production, s3_archive, tmp_path, step):
    versions = three_versions(database, s3_archive, tmp_path)
    set_policy(database, s3_archive, production.project_id, keep_latest=1)
    moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    killed = _child(database, s3_archive, step, "restore", str(versions[0]))
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    _every_blob_has_a_good_copy(database, s3_archive, versions)

    report = restores.restore_versions(database, s3_archive, actor=SYSTEM, version_ids=[versions[0]])
    # Killed once recorded, the version was restored already: the rerun only relinks its paths.
    assert report.outcomes[0].state == ("hot" if step == "restore:recorded" else "restored")
    for path in published_paths(database, s3_archive, versions[0]):
        assert not path.is_symlink() and path.stat().st_nlink == 2
    for digest in blobs_of(database, versions[0]):
        assert good_copies(s3_archive, database, digest) == ["archive", "hot"]
    assert restores.archived_state(database, versions) == {versions[1]: "archive"}
    assert_sound(database, s3_archive)


def test_a_copy_corrupted_in_flight_is_caught_and_the_hot_copy_kept(
    database, production, s3_archive, s3_endpoint, tmp_path, monkeypatch
):
    # Frames above SMALL_FILE: sent from the hot files themselves and each read back as soon
    # as it is stored, while the others upload.
    monkeypatch.setattr(s3_tier, "SMALL_FILE", 1024)
    v1, _v2, _v3 = three_versions(database, s3_archive, tmp_path)
    set_policy(database, s3_archive, production.project_id, keep_latest=2)
    victim = sorted(blobs_of(database, v1))[0]
    archive = store_of(s3_archive, "archive")
    key = archive.url_for(victim).split("/", 3)[3]
    client = boto3.client("s3", **s3_endpoint.client_kwargs())
    corrupt_on_arrival(
        monkeypatch,
        victim,
        lambda: client.put_object(Bucket=s3_endpoint.bucket, Key=key, Body=b"not what was copied"),
    )
    report = moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    assert (
        len(report.failures) == 1 and victim in report.failures[0] and "does not hash" in report.failures[0]
    )
    assert set(tiers_of(database, victim)) == {"hot"} and not archive.exists(victim)
    for digest in blobs_of(database, v1):
        assert "hot" in good_copies(s3_archive, database, digest)
    assert restores.archived_state(database, [v1]) == {}
    report = moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    assert report.failures == [] and restores.archived_state(database, [v1]) == {v1: "archive"}
    assert archive.rehash(victim) == victim
    assert_sound(database, s3_archive)


def test_a_cold_tier_answers_restoring_until_ready(database, production, s3_archive, tmp_path):
    v1, _v2, _v3 = three_versions(database, s3_archive, tmp_path)
    set_policy(database, s3_archive, production.project_id, keep_latest=1)
    moves.archive_project(database, s3_archive, actor=SYSTEM, project="DEMO")
    cold = s3_archive.model_copy(update={"tier_restore_delays": {"archive": 4 * 3600}})
    first = restores.restore_versions(database, cold, actor=SYSTEM, version_ids=[v1])
    (outcome,) = first.outcomes
    assert outcome.state == "restoring" and 4 * 3600 - 60 < outcome.ready_in <= 4 * 3600
    assert "restoring, ready in 4.0 h" in restores.pending_message(first)
    with pytest.raises(
        restores.RestorePending, match=f"version {v1} is archived in tier archive: restoring"
    ) as raised:
        restores.ensure_hot(database, cold, actor=SYSTEM, version_id=v1)
    assert raised.value.status_code == 202
    assert all("hot" not in tiers_of(database, digest) for digest in blobs_of(database, v1))
    with UnitOfWork(database) as uow:  # the cold store's hours go by
        uow.session.execute(update(RestoreRequest).values(ready_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    assert restores.ensure_hot(database, cold, actor=SYSTEM, version_id=v1).state == "restored"
    assert all("hot" in tiers_of(database, digest) for digest in blobs_of(database, v1))


def test_an_unreachable_archive_endpoint_moves_nothing(database, production, settings, tmp_path):
    versions = three_versions(database, settings, tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = settings.model_copy(
        update={
            "archive_root": "s3://nowhere/archive",
            "storage_options": {
                "s3://nowhere": {
                    "endpoint_url": dead,
                    "key": "k",
                    "secret": "s",
                    "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
                }
            },
        }
    )
    set_policy(database, unreachable, production.project_id, keep_latest=1)
    with pytest.raises(StorageError, match="storage tier archive") as raised:
        moves.archive_project(database, unreachable, actor=SYSTEM, project="DEMO")
    assert isinstance(raised.value, BifrostError) and raised.value.status_code == 503
    assert restores.archived_state(database, versions) == {}
    for version in versions:
        for digest in blobs_of(database, version):
            assert set(tiers_of(database, digest)) == {"hot"}
    assert_sound(database, settings)
