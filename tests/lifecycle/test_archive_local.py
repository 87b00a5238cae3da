"""Archive policies and moves between local tiers: what moves, what stays, published paths,
restore, and the faults (a corrupt copy, a damaged only copy, a full tier, everything)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import Conflict, DamagedContent, InvalidInput
from bifrost_core.events.models import Event
from bifrost_core.ingest import upkeep
from bifrost_core.lifecycle import moves, policies, restores
from bifrost_core.lifecycle.models import ArchivedVersion
from bifrost_core.projects.models import Project, Shot
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.errors import StorageFull
from tests.support.archive import (
    age,
    blobs_of,
    corrupt_on_arrival,
    good_copies,
    published_paths,
    set_policy,
    store_of,
    three_versions,
    tiers_of,
)
from tests.support.ingest import assert_sound
from tests.support.services import tmpfs


def _archive(database, settings, **options):
    return moves.archive_project(database, settings, actor=SYSTEM, project="DEMO", **options)


def test_policy_is_checked_when_set(database, production, settings):
    with pytest.raises(InvalidInput, match="keep_latest: Input should be greater than or equal to 1"):
        policies.parse_rules({"keep_latest": 0})
    with pytest.raises(InvalidInput, match="archive policy: colour: Extra inputs are not permitted"):
        policies.parse_rules({"colour": "red"})
    with pytest.raises(InvalidInput, match="cannot be the hot tier"):
        policies.parse_rules({"tier": "hot"})
    with UnitOfWork(database) as uow, pytest.raises(InvalidInput, match="has no storage tier 'glacier'"):
        policies.set_policy(
            uow.session,
            settings,
            actor=SYSTEM,
            project_id=production.project_id,
            rules=policies.parse_rules({"tier": "glacier", "keep_latest": 2}),
        )
    set_policy(database, settings, production.project_id, keep_latest=2)
    with UnitOfWork(database) as uow:
        read = policies.get_policy(uow.session, actor=SYSTEM, project_id=production.project_id)
        kinds = list(uow.session.scalars(select(Event.kind)))
    assert read.rules.keep_latest == 2
    assert "archive_policy.set" in kinds


def test_keep_latest_moves_older_versions_and_restore_brings_them_back(
    database, production, settings, tmp_path
):
    v1, v2, v3 = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=1)
    hot, archive = store_of(settings, "hot"), store_of(settings, "archive")

    dry = _archive(database, settings, dry_run=True)
    assert [move.version_id for move in dry.versions] == [v1, v2]
    assert {move.rule for move in dry.versions} == {"superseded"}
    assert dry.bytes_of("archive").added == dry.bytes_of("hot").freed == 2 * 3 * 4096
    assert not list(archive.iter_blobs())  # a dry run moves nothing

    report = _archive(database, settings)
    assert report.failures == []
    assert (report.blobs_copied, report.blobs_released) == (6, 6)
    for version in (v1, v2):
        for digest in blobs_of(database, version):
            assert set(tiers_of(database, digest)) == {"archive"}
            assert not hot.exists(digest) and archive.rehash(digest) == digest
    for digest in blobs_of(database, v3):
        assert set(tiers_of(database, digest)) == {"hot"}
    # The published paths of archived files still read, through a link to the archive copy.
    path = published_paths(database, settings, v1)[0]
    assert path.is_symlink() and str(os.readlink(path)).startswith(settings.tier_roots["archive"])
    assert path.read_bytes().startswith(b"plate1001v1")
    assert_sound(database, settings)
    assert _archive(database, settings).versions == []  # nothing left to move

    restored = restores.restore_versions(database, settings, actor=SYSTEM, version_ids=[v1])
    assert [(o.version_id, o.state, o.blobs) for o in restored.outcomes] == [(v1, "restored", 3)]
    for digest in blobs_of(database, v1):
        assert set(tiers_of(database, digest)) == {"hot", "archive"}
        assert hot.rehash(digest) == digest
    assert not path.is_symlink() and path.stat().st_nlink == 2  # a hard link to the hot blob again
    assert (
        restores.restore_versions(database, settings, actor=SYSTEM, version_ids=[v1]).outcomes[0].state
        == "hot"
    )
    # The restored version stays hot for the policy's hold, though it selects it.
    assert [move.version_id for move in _archive(database, settings, dry_run=True).versions] == []
    with UnitOfWork(database) as uow:
        kinds = list(uow.session.scalars(select(Event.kind).where(Event.entity_type == "version")))
    assert kinds.count("version.archived") == 2 and kinds.count("version.restored") == 1
    assert_sound(database, settings)


def test_a_blob_shared_with_a_hot_version_stays_hot(database, production, settings, tmp_path):
    v1, _v2, v3 = three_versions(database, settings, tmp_path, shared=True)
    shared = blobs_of(database, v1) & blobs_of(database, v3)
    assert len(shared) == 1
    set_policy(database, settings, production.project_id, keep_latest=1)
    dry = _archive(database, settings, dry_run=True)
    assert dry.shared_kept_hot == 1
    report = _archive(database, settings)
    assert report.blobs_released == 4  # 2 versions x 3 frames, less the shared frame kept hot
    (digest,) = shared
    assert set(tiers_of(database, digest)) == {"hot", "archive"}
    assert store_of(settings, "hot").rehash(digest) == digest
    assert_sound(database, settings)


def test_unapproved_old_versions_and_final_shots(database, production, settings, tmp_path):
    v1, v2, _v3 = three_versions(database, settings, tmp_path)
    age(database, [v1, v2], days=40)
    set_policy(database, settings, production.project_id, unapproved_older_than_days=30)
    assert [m.version_id for m in _archive(database, settings, dry_run=True).versions] == [v1, v2]
    with UnitOfWork(database) as uow:
        shot = uow.session.scalars(select(Shot).where(Shot.code == "sh010")).one()
        policies.mark_final(uow.session, actor=SYSTEM, shot=shot)
        uow.commit()
    set_policy(database, settings, production.project_id, final_shot_after_days=0, keep_latest=1)
    with pytest.raises(Conflict, match="would archive all 3 of its hot versions: run it with --force"):
        _archive(database, settings)
    assert {m.rule for m in _archive(database, settings, dry_run=True, force=True).versions} == {"final_shot"}


def test_a_policy_that_archives_everything_needs_force(database, production, settings, tmp_path):
    three_versions(database, settings, tmp_path)
    with UnitOfWork(database) as uow:
        uow.session.get(Project, production.project_id).status = "closed"
        uow.commit()
    set_policy(database, settings, production.project_id, closed_project=True)
    with pytest.raises(Conflict, match="project DEMO would archive all 3"):
        _archive(database, settings)
    assert not list(store_of(settings, "archive").iter_blobs())
    # The scheduled run over every project skips it, and says why.
    (skipped,) = moves.archive_all(database, settings, actor=SYSTEM, dry_run=False)
    assert skipped.skipped is not None and "--force" in skipped.skipped
    report = _archive(database, settings, force=True)
    assert len(report.versions) == 3 and report.failures == []
    with UnitOfWork(database) as uow:
        assert len(uow.session.scalars(select(ArchivedVersion)).all()) == 3
    assert not list(store_of(settings, "hot").iter_blobs())
    assert_sound(database, settings)


def test_a_copy_corrupted_in_flight_is_caught_and_the_hot_copy_kept(
    database, production, settings, tmp_path, monkeypatch
):
    v1, _v2, _v3 = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=2)
    victim = sorted(blobs_of(database, v1))[0]
    archive = store_of(settings, "archive")

    def corrupt() -> None:
        path = archive.local_path(victim)
        path.chmod(0o644)
        path.write_bytes(b"not what was copied")

    corrupt_on_arrival(monkeypatch, victim, corrupt)
    report = _archive(database, settings)
    assert (
        len(report.failures) == 1 and victim in report.failures[0] and "does not hash" in report.failures[0]
    )
    assert set(tiers_of(database, victim)) == {"hot"}
    for digest in blobs_of(database, v1):
        assert "hot" in good_copies(settings, database, digest)
    assert restores.archived_state(database, [v1]) == {}
    assert _archive(database, settings).failures == []  # the next run copies it again
    assert restores.archived_state(database, [v1]) == {v1: "archive"}
    assert_sound(database, settings)


def test_restore_of_a_version_whose_only_copy_is_damaged_names_the_blobs(
    database, production, settings, tmp_path
):
    v1, _v2, _v3 = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=2)
    _archive(database, settings)
    victim = sorted(blobs_of(database, v1))[1]
    path = store_of(settings, "archive").local_path(victim)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    with pytest.raises(DamagedContent, match=f"version {v1} cannot be restored.*{victim}") as raised:
        restores.restore_versions(database, settings, actor=SYSTEM, version_ids=[v1])
    assert raised.value.status_code == 409
    assert "hot" not in tiers_of(database, victim)
    assert restores.archived_state(database, [v1]) == {v1: "archive"}


def test_a_full_archive_tier_keeps_every_hot_copy(database, production, settings, tmp_path):
    v1, _v2, _v3 = three_versions(database, settings, tmp_path)
    with tmpfs(tmp_path / "full", "size=16k") as full:
        with UnitOfWork(database) as uow:
            uow.session.get(Project, production.project_id).storage_tiers = {"cold": str(full)}
            uow.commit()
        set_policy(database, settings, production.project_id, keep_latest=1, tier="cold")
        with pytest.raises(StorageFull, match="storage tier cold is full"):
            _archive(database, settings)
        assert restores.archived_state(database, [v1]) == {}
        for digest in blobs_of(database, v1):
            assert set(tiers_of(database, digest)) == {"hot"}
        assert_sound(database, settings)


def test_verify_finds_every_location_after_moves(database, production, settings, tmp_path):
    three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=1)
    _archive(database, settings)
    report = upkeep.verify(database, settings)
    assert report.ok and report.checked == 9


def test_gc_at_every_step_of_a_move_and_a_restore_takes_nothing(
    database, production, settings, tmp_path, monkeypatch
):
    versions = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=1)
    real = moves.crash_point
    steps: list[str] = []

    def collect(name: str) -> None:
        steps.append(name)
        if name == "archive:unlinked":
            # Inside the release's transaction, which holds gc's lock: no gc can run there.
            return real(name)
        gone = upkeep.gc(database, settings, grace_hours=0)
        assert (gone.records_removed, gone.blobs_removed) == (0, 0), name
        for version in versions:
            for digest in blobs_of(database, version):
                assert good_copies(settings, database, digest), (name, digest)
        return real(name)

    monkeypatch.setattr(moves, "crash_point", collect)
    monkeypatch.setattr(restores, "crash_point", collect)
    assert _archive(database, settings).failures == []
    restores.restore_versions(database, settings, actor=SYSTEM, version_ids=[versions[0]])
    assert {"archive:copied", "archive:verified", "archive:recorded", "archive:unlinked"} <= set(steps)
    assert {"restore:copied", "restore:recorded"} <= set(steps)
    assert_sound(database, settings)


def test_new_content_equal_to_an_archived_blob_is_stored_hot_again(database, production, settings, tmp_path):
    from tests.support.ingest import frames, planned, run_planned

    v1, _v2, _v3 = three_versions(database, settings, tmp_path)
    set_policy(database, settings, production.project_id, keep_latest=2)
    _archive(database, settings)
    archived = blobs_of(database, v1)
    assert all(set(tiers_of(database, digest)) == {"archive"} for digest in archived)
    # A render (or any ingest) of sh020 whose frames hold the same bytes as v1's.
    again = frames(tmp_path / "render", "plate", 1001, 1003, size=4096, salt=b"v1")
    run_planned(database, settings, [planned(again, shot="sh020")])
    for digest in archived:
        assert set(tiers_of(database, digest)) == {"hot", "archive"}
        assert store_of(settings, "hot").rehash(digest) == digest
    # The archived version keeps its state; its blobs are hot again for the new version.
    assert restores.archived_state(database, [v1]) == {v1: "archive"}
    assert_sound(database, settings)
