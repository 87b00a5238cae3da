"""Storing and registering planned versions: one transaction per version, reruns find their work."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import progress, service
from bifrost_core.projects.models import Project
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import RepresentationFile, Version
from bifrost_core.versions.service import file_locations
from tests.support.ingest import counts, frames, planned, run_planned, write


def test_run_batch_stores_registers_and_a_rerun_creates_nothing(database, production, settings, tmp_path):
    paths = frames(tmp_path / "src", "plate", 1001, 1004)
    result = run_planned(database, settings, [planned(paths)], source=str(tmp_path / "src"))
    assert not result.problems
    assert [(v.target, v.number, v.files) for v in result.created] == [("sq010/sh010 plate main", 1, 4)]
    assert result.files_copied == 4
    store = BlobStore(settings.tier_roots["hot"])
    with UnitOfWork(database) as uow:
        version = uow.session.get(Version, result.created[0].version_id)
        files = version.representations[0].files
        hashes = {uow.session.get(Blob, f.blob_id).hash for f in files}
        assert [f.frame for f in files] == [1001, 1002, 1003, 1004]
        assert version.meta["ingest_key"]
    # Every recorded blob is in the tier with the right bytes.
    assert all(store.rehash(h) == h for h in hashes)

    again = planned(paths)
    with UnitOfWork(database) as uow:
        assert service.apply_fingerprints(uow.session, production.project_id, again.files) == 4
        service.classify(uow.session, project_id=production.project_id, versions=[again])
    assert again.status == "known"
    before = counts(database)
    rerun = run_planned(database, settings, [planned(paths)], source=str(tmp_path / "src"))
    assert (rerun.created, rerun.known, rerun.files_copied) == ([], 1, 0)
    assert counts(database) == before


def test_changed_content_makes_the_next_version_and_shares_unchanged_blobs(
    database, production, settings, tmp_path
):
    paths = frames(tmp_path / "src", "plate", 1001, 1003)
    run_planned(database, settings, [planned(paths)], source="d1")
    write(paths[1], b"retouched frame")
    second = planned(paths)
    with UnitOfWork(database) as uow:
        assert service.apply_fingerprints(uow.session, production.project_id, second.files) == 2
        service.classify(uow.session, project_id=production.project_id, versions=[second])
    assert second.status == "changed"
    result = run_planned(database, settings, [second], source="d1")
    assert [v.number for v in result.created] == [2]
    assert result.files_copied == 1
    assert counts(database)["blobs"] == 4


def test_identical_content_in_two_places_is_stored_once(database, production, settings, tmp_path):
    a = frames(tmp_path / "a", "plate", 1001, 1002)
    b = frames(tmp_path / "b", "plate", 1001, 1002)
    result = run_planned(database, settings, [planned(a), planned(b, shot="sh020")], source="two")
    assert len(result.created) == 2
    assert counts(database)["blobs"] == 2
    assert sum(1 for _ in BlobStore(settings.tier_roots["hot"]).iter_blobs()) == 2


class Recorder:
    """A progress listener keeping what it was told."""

    def __init__(self) -> None:
        self.files = self.size = 0

    def total(self, files: int, size: int) -> None: ...

    def advance(self, files: int, size: int) -> None:
        self.files += files
        self.size += size


def test_unreadable_file_skips_its_whole_version_only(database, production, settings, tmp_path):
    good = frames(tmp_path / "good", "plate", 1001, 1002)
    bad = frames(tmp_path / "bad", "plate", 1001, 1003)
    broken = planned(bad, shot="sh020")
    versions = [planned(good), broken]
    # Root reads any mode bits, so "unreadable" here is a file gone and a FIFO in its place.
    bad[1].unlink()
    bad[2].unlink()
    os.mkfifo(bad[2])
    recorder = Recorder()
    progress.listen(recorder)
    try:
        result = run_planned(database, settings, versions)
    finally:
        progress.forget(recorder)
    # Progress counts every planned file, failed ones included, so a bar reaches its end.
    assert (recorder.files, recorder.size) == (5, sum(v.size for v in versions))
    assert [v.target for v in result.created] == ["sq010/sh010 plate main"]
    messages = [p.message for p in result.problems]
    assert any("no such file" in m.lower() for m in messages), messages
    assert any("not a regular file" in m for m in messages), messages
    # The version is held back whole, with the problems of its two files.
    assert [(held.target, held.problems) for held in result.held_back] == [
        ("sq010/sh020 plate main", result.problems)
    ]
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Version)) == 1
        # The good frame of the broken version may be stored, but nothing points at it.
        assert uow.session.scalar(select(func.count()).select_from(RepresentationFile)) == 2


def set_path_templates(database, project_id: int, templates: dict[str, str]) -> None:
    with UnitOfWork(database) as uow:
        project = uow.session.get(Project, project_id)
        project.config = {**(project.config or {}), "path_templates": templates}
        uow.commit()


def test_project_path_template_places_the_published_links(database, production, settings, tmp_path):
    template = "{project}/{shot}/{task}/v{version:03d}/{name}_{frame}.{ext}"
    set_path_templates(database, production.project_id, {"shot": template})
    paths = frames(tmp_path / "src", "plate", 1001, 1003)
    result = run_planned(database, settings, [planned(paths)])
    assert not result.problems
    folder = Path(settings.tier_roots["hot"]) / "published" / "DEMO" / "sh010" / "plate" / "v001"
    assert sorted(p.name for p in folder.iterdir()) == ["plate_1001.exr", "plate_1002.exr", "plate_1003.exr"]
    store = BlobStore(settings.tier_roots["hot"])
    digest = blake3.blake3(paths[1].read_bytes()).hexdigest()
    assert (folder / "plate_1002.exr").stat().st_ino == store.local_path(digest).stat().st_ino
    # The database keeps each file's published path; on a local tier it is read at its link.
    with UnitOfWork(database) as uow:
        representation = uow.session.get(Version, result.created[0].version_id).representations[0]
        recorded = {f.name: f.published_path for f in representation.files}
        where = file_locations(uow.session, representation)
    assert recorded["plate.1002.exr"] == "DEMO/sh010/plate/v001/plate_1002.exr"
    assert where["plate.1002.exr"] == {"hot": str(folder / "plate_1002.exr")}


def test_bad_path_template_fails_each_version_whole(database, production, settings, tmp_path):
    set_path_templates(database, production.project_id, {"shot": "{project}/{nosuch}/{name}.{ext}"})
    before = counts(database)
    result = run_planned(
        database,
        settings,
        [
            planned(frames(tmp_path / "a", "plate", 1001, 1002)),
            planned(frames(tmp_path / "b", "plate", 1001, 1002), shot="sh020"),
        ],
    )
    assert result.created == []
    assert len(result.problems) == 2
    assert all("unknown field {nosuch}" in p.message for p in result.problems)
    assert not (Path(settings.tier_roots["hot"]) / "published").exists()
    # The stored blobs are left for gc; every row of the versions rolled back, blobs' included.
    assert counts(database) == before
