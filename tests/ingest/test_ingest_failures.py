"""Failures of the store and of sources during an ingest: clear errors, nothing half-registered."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bifrost_core.config import load_settings
from bifrost_core.errors import ConfigError
from bifrost_core.ingest import batches, planning
from bifrost_core.ingest.schemas import HeldBack, Problem
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.errors import StorageFull
from tests.support.ingest import content, counts, frames, run, write
from tests.support.services import tmpfs

EMPTY = {
    "versions": 0,
    "representations": 0,
    "representation_files": 0,
    "ingest_records": 0,
    "ingest_files": 0,
}


def no_versions(database) -> None:
    found = counts(database)
    assert {name: found[name] for name in EMPTY} == EMPTY


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a tier that fills up."""
    with tmpfs(tmp_path / "small-disk", "size=1m") as mount:
        yield mount


def test_a_full_disk_stops_the_batch_with_a_clear_error(database, production, tmp_path, small_disk):
    (small_disk / "hot").mkdir()
    settings = load_settings(
        home=tmp_path / "home", database_url=database.url, hot_root=str(small_disk / "hot")
    )
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003, size=600_000)
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    with pytest.raises(StorageFull, match="storage tier hot is full"):
        run(database, settings, plan)
    no_versions(database)
    store = BlobStore(small_disk / "hot")
    # Whatever made it to a final path is whole; no temporary file is left behind.
    assert all(store.rehash(info.digest) == info.digest for info in store.iter_blobs())
    assert not any((small_disk / "hot" / "tmp").iterdir())
    assert not list((small_disk / "hot").rglob(".tmp-*"))  # small files' temporary files


def test_a_missing_bucket_is_a_configuration_error_at_once(database, production, s3_settings, tmp_path):
    """Defect 6 of issue #10 (9 in its list): a missing bucket was a StorageError, retried as
    transient (5 s, 30 s). It is a ConfigError, found before anything is stored."""
    missing = load_settings(
        home=tmp_path / "home", database_url=database.url, hot_root="s3://no-such-bucket/bifrost"
    )
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1002)
    with pytest.raises(ConfigError) as planned:
        planning.plan_ingest(database, missing, project="DEMO", source=str(root), tier="hot")
    assert (
        str(planned.value)
        == "storage tier hot: bucket no-such-bucket does not exist (s3://no-such-bucket/bifrost)"
    )
    # Planned while the bucket was there, stored once it is gone: the same kind of error,
    # which a retry cannot help.
    plan = planning.plan_ingest(database, s3_settings, project="DEMO", source=str(root), tier="hot")
    with pytest.raises(ConfigError, match="storage tier hot: bucket no-such-bucket does not exist") as stored:
        run(database, missing, plan)
    assert not batches.is_transient(stored.value)
    no_versions(database)


def test_a_file_changed_after_the_scan_is_reported_and_its_version_skipped(
    database, production, settings, tmp_path
):
    root = tmp_path / "delivery"
    moving = frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003)
    frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1002, salt=b"steady")
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    time.sleep(0.01)
    write(moving[1], content(b"a longer, newer take", 5000))  # size and mtime move after the scan
    result = run(database, settings, plan)
    assert [v.target for v in result.created] == ["sq010/sh020 plate main"]
    changed = Problem(
        path="sq010/sh010/plate/plate.1002.exr", message="changed while being ingested; run the ingest again"
    )
    assert result.problems == [changed]
    assert result.held_back == [HeldBack(target="sq010/sh010 plate main", problems=[changed])]
    # The rerun picks the new bytes up.
    again = run(
        database,
        settings,
        planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot"),
    )
    assert [v.target for v in again.created] == ["sq010/sh010 plate main"]


def test_a_file_growing_during_the_copy_is_reread_or_reported(database, production, settings, tmp_path):
    """A writer appending while the store reads: the store re-reads once, then gives up on it."""
    root = tmp_path / "delivery"
    growing = write(root / "sq010" / "sh010" / "plate" / "plate.mov", content(b"growing", 64 << 20))
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    writer = subprocess.Popen(
        ["sh", "-c", f"for i in $(seq 1 400); do printf more >> '{growing}'; sleep 0.005; done"]
    )
    try:
        result = run(database, settings, plan)
    finally:
        writer.wait()
    if result.created:
        # The copy won the race: what was recorded is what the file held when it was read.
        assert result.created[0].size == plan.versions[0].size
    else:
        assert any("changed" in p.message for p in result.problems), result.problems
        no_versions(database)
    assert os.path.getsize(growing) > plan.versions[0].size


def test_a_full_spool_folder_stops_an_s3_batch_and_says_so(
    database, production, s3_settings, tmp_path, small_disk, monkeypatch
):
    # Files above 4 MiB reach S3 through a spool file in TMPDIR: here a 1 MiB tmpfs.
    monkeypatch.setattr(tempfile, "tempdir", str(small_disk))
    root = tmp_path / "delivery"
    write(root / "sq010" / "sh010" / "plate" / "plate.mov", content(b"movie", 5 << 20))
    plan = planning.plan_ingest(database, s3_settings, project="DEMO", source=str(root), tier="hot")
    with pytest.raises(StorageFull, match="set TMPDIR") as raised:
        run(database, s3_settings, plan)
    assert "tier hot is full" not in str(raised.value)  # the spool is, not the tier
    assert f"cannot spool {root}/sq010/sh010/plate/plate.mov in {small_disk}" in str(raised.value)
    no_versions(database)
    assert list(small_disk.iterdir()) == []
