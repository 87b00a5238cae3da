"""`storage gc` against running ingests (issue #10, defects 1, 2 and 5): leases, reruns that
repair, reuses that verify, and tiers holding things the store did not write."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import blake3
import boto3
import pytest
from sqlalchemy import delete, event, func, select, text

from bifrost_core.db.base import utcnow
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import batches, planning, upkeep
from bifrost_core.projects.models import Project
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobStore, blob_key, local
from bifrost_core.storage.models import Blob, BlobLease
from bifrost_core.versions.models import Representation, Version
from tests.support.ingest import (
    INGEST_CHILD,
    ROOT,
    assert_sound,
    child_env,
    content,
    counts,
    frames,
    planned,
    run,
    run_planned,
    write,
)


def start_child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*INGEST_CHILD, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def ingest(database, settings, source: Path, *, batch_files: int = 1000):
    """Plan and run a delivery in-process, in batches of `batch_files` files."""
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(source), tier="hot")
    return run(database, settings, plan, max_files=batch_files)


def delivery(root: Path, salt: bytes = b"") -> Path:
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1006, salt=salt)
    frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1004, salt=salt + b"sh020")
    write(root / "assets" / "chair" / "model" / "chair.abc", content(b"alembic" + salt, 5000))
    return root


def gc_at(monkeypatch: pytest.MonkeyPatch, point: str, database, settings) -> list[upkeep.GcReport]:
    """Run `storage gc` with no grace when the ingest reaches `point` (its first time there)."""
    reports: list[upkeep.GcReport] = []
    real = batches.crash_point

    def hook(name: str) -> None:
        if name == point and not reports:
            reports.append(upkeep.gc(database, settings, grace_hours=0))
        real(name)

    monkeypatch.setattr(batches, "crash_point", hook)
    return reports


# --------------------------------------------------------------------------- defect 1


def test_gc_at_the_dangerous_point_of_a_rerun_after_a_crash_loses_nothing(
    database, production, settings, tmp_path, monkeypatch
):
    """A crashed ingest left its blobs; the rerun finds them there and reuses them; gc runs
    between the store and the registration. Before leases, the versions were registered on
    the blobs gc had just removed."""
    root = delivery(tmp_path / "delivery")
    child = start_child(["ingest", str(root), "1000"], child_env(database, settings, "stored"))
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    store = BlobStore(settings.tier_roots["hot"])
    left = {info.digest for info in store.iter_blobs()}
    assert len(left) == 11 and counts(database)["versions"] == 0

    reports = gc_at(monkeypatch, "stored", database, settings)
    summary = ingest(database, settings, root)
    assert reports[0].blobs_removed == 11  # the race happened: everything stored was unrecorded
    assert (len(summary.created), summary.problems, summary.blobs_repaired) == (3, [], 11)
    assert_sound(database, settings)


def test_gc_while_a_batch_holds_its_leases_removes_none_of_its_blobs(
    database, production, settings, tmp_path, monkeypatch
):
    root = delivery(tmp_path / "delivery")
    reports = gc_at(monkeypatch, "leased", database, settings)
    summary = ingest(database, settings, root)
    assert (reports[0].records_removed, reports[0].blobs_removed) == (0, 0)
    assert (len(summary.created), summary.blobs_repaired) == (3, 0)
    assert_sound(database, settings)


def test_gc_racing_a_reuse_of_recorded_blobs_loses_nothing(
    database, production, settings, tmp_path, monkeypatch
):
    """The recorded-blob shortcut: the files' hashes are known from their fingerprints and
    their blobs recorded, unreferenced (the version was removed), so gc takes records and bytes."""
    root = delivery(tmp_path / "delivery")
    ingest(database, settings, root)
    with UnitOfWork(database) as uow:
        uow.session.execute(delete(Version))
        uow.commit()
    reports = gc_at(monkeypatch, "stored", database, settings)
    summary = ingest(database, settings, root)
    assert (reports[0].records_removed, reports[0].blobs_removed) == (11, 11)
    assert (len(summary.created), summary.files_copied, summary.blobs_repaired) == (3, 11, 11)
    assert_sound(database, settings)


def test_a_rerun_repairs_a_version_whose_blob_went_missing(database, production, settings, tmp_path):
    root = delivery(tmp_path / "delivery")
    assert len(ingest(database, settings, root).created) == 3
    store = BlobStore(settings.tier_roots["hot"])
    frame = root / "sq010" / "sh010" / "plate" / "plate.1002.exr"
    digest = blake3.blake3(frame.read_bytes()).hexdigest()
    published = Path(settings.tier_roots["hot"]) / "published" / "DEMO" / "shots" / "sq010" / "sh010"
    link = published / "plate" / "main" / "v001" / "plate.1002.exr"
    assert link.stat().st_ino == store.local_path(digest).stat().st_ino
    store.local_path(digest).unlink()
    assert not upkeep.verify(database, settings).ok

    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    assert sorted((v.status, v.missing) for v in plan.versions) == [("known", 0), ("known", 0), ("known", 1)]
    summary = ingest(database, settings, root)
    assert (summary.created, summary.known, summary.blobs_repaired, summary.problems) == ([], 3, 1, [])
    assert_sound(database, settings)
    # The published hard link, which kept the old file, is moved to the restored blob.
    assert link.stat().st_ino == store.local_path(digest).stat().st_ino
    assert link.read_bytes() == frame.read_bytes()
    assert ingest(database, settings, root).blobs_repaired == 0


def test_a_version_whose_blob_and_source_are_both_gone_is_reported_by_name(
    database, production, settings, tmp_path
):
    root = delivery(tmp_path / "delivery")
    ingest(database, settings, root)
    before = counts(database)
    store = BlobStore(settings.tier_roots["hot"])
    changed, deleted = (
        root / "sq010" / "sh010" / "plate" / "plate.1003.exr",
        root / "assets" / "chair" / "model" / "chair.abc",
    )
    for path in (changed, deleted):
        store.local_path(blake3.blake3(path.read_bytes()).hexdigest()).unlink()
    # Other bytes under the same size and time: still "known" by its fingerprint.
    st = changed.stat()
    changed.write_bytes(bytes(255 - b for b in changed.read_bytes()))
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="hot")
    deleted.unlink()  # gone between the plan and the run

    summary = run(database, settings, plan, max_files=1000)
    messages = [p.message for p in summary.problems]
    assert any(
        m.startswith("version sq010/sh010 plate main v001 has 1 blob(s) missing from tier hot, not repaired")
        for m in messages
    ), messages
    assert any(m.startswith("version asset chair model main v001 has 1 blob(s) missing") for m in messages), (
        messages
    )
    assert (summary.created, summary.blobs_repaired) == ([], 0)
    assert counts(database)["versions"] == before["versions"]


# --------------------------------------------------------------------------- defect 2


def flip(path: Path) -> None:
    """Damage a file in place, same size (a hard link to it sees the damage too)."""
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_flipped_bytes_of_a_stored_blob_are_repaired_by_the_next_ingest_of_that_content(
    database, production, settings, tmp_path, monkeypatch
):
    # Lower the small-file limit so that one file takes the streamed (large-file) path.
    monkeypatch.setattr(local, "SMALL_FILE", 64 * 1024)
    monkeypatch.setattr(local, "CHUNK", 32 * 1024)
    first = tmp_path / "first" / "sq010" / "sh010" / "plate"
    small = write(first / "plate.1001.exr", content(b"small frame", 3000))
    large = write(first / "plate.1002.exr", content(b"large frame", 200_000))
    assert len(ingest(database, settings, tmp_path / "first").created) == 1
    store = BlobStore(settings.tier_roots["hot"])
    digests = [blake3.blake3(p.read_bytes()).hexdigest() for p in (small, large)]
    for digest in digests:
        flip(store.local_path(digest))
    assert len(upkeep.verify(database, settings).findings) == 2

    # The same bytes delivered again, for another shot: the store finds them "there".
    second = tmp_path / "second" / "sq010" / "sh020" / "plate"
    write(second / "plate.1001.exr", small.read_bytes())
    write(second / "plate.1002.exr", large.read_bytes())
    summary = ingest(database, settings, tmp_path / "second")
    assert (len(summary.created), summary.blobs_repaired) == (1, 2)
    assert_sound(database, settings)
    # The first version's published links shared the damaged file: they now share the repaired one.
    published = Path(settings.tier_roots["hot"]) / "published" / "DEMO" / "shots" / "sq010" / "sh010"
    for source, digest in zip((small, large), digests, strict=True):
        link = published / "plate" / "main" / "v001" / source.name
        assert link.read_bytes() == source.read_bytes()
        assert link.stat().st_ino == store.local_path(digest).stat().st_ino


def test_a_damaged_blob_reused_by_fingerprint_is_rehashed_and_repaired(
    database, production, settings, tmp_path
):
    root = tmp_path / "delivery"
    paths = frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003)
    ingest(database, settings, root)
    store = BlobStore(settings.tier_roots["hot"])
    flip(store.local_path(blake3.blake3(paths[0].read_bytes()).hexdigest()))
    write(paths[2], content(b"a new take", 2048))  # a new version that keeps frames 1001-1002
    summary = ingest(database, settings, root)
    assert ([v.number for v in summary.created], summary.files_copied, summary.blobs_repaired) == ([2], 2, 1)
    assert_sound(database, settings)


def test_flipped_bytes_of_an_s3_blob_are_repaired_by_the_next_ingest(
    database, production, s3_settings, s3_endpoint, tmp_path
):
    settings = s3_settings
    first = tmp_path / "first" / "sq010" / "sh010" / "plate"
    paths = [
        write(first / "plate.1001.exr", content(b"frame", 3000)),
        write(first / "plate.1002.exr", content(b"big", 5 << 20)),
    ]
    ingest(database, settings, tmp_path / "first")
    client = boto3.client("s3", **s3_endpoint.client_kwargs())
    prefix = settings.tier_roots["hot"].removeprefix(f"s3://{s3_endpoint.bucket}/")
    for path in paths:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        key = f"{prefix}/{blob_key(blake3.blake3(path.read_bytes()).hexdigest())}"
        client.put_object(Bucket=s3_endpoint.bucket, Key=key, Body=bytes(data))
    assert len(upkeep.verify(database, settings).findings) == 2

    second = tmp_path / "second" / "sq010" / "sh020" / "plate"
    for path in paths:
        write(second / path.name, path.read_bytes())
    summary = ingest(database, settings, tmp_path / "second")
    assert (len(summary.created), summary.blobs_repaired, summary.files_copied) == (1, 2, 2)
    assert_sound(database, settings)


# --------------------------------------------------------------------------- leases and the lock


def test_gc_keeps_a_leased_blob_until_the_lease_is_released_or_expires(
    database, production, settings, tmp_path
):
    store = BlobStore(settings.tier_roots["hot"])
    blobs = store.put_files(frames(tmp_path / "src", "x", 1, 2))  # unrecorded: gc's to take
    kept, expired = blobs[0].digest, blobs[1].digest
    with UnitOfWork(database) as uow:
        uow.session.add(BlobLease(hash=expired, holder="crashed", expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    with leases.leased(database, [kept]):
        report = upkeep.gc(database, settings, grace_hours=0)
        assert report.blobs_removed == 1
        assert store.exists(kept) and not store.exists(expired)
    assert upkeep.gc(database, settings, grace_hours=0).blobs_removed == 1
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(BlobLease)) == 0


def test_taking_leases_waits_while_gc_holds_its_lock(database):
    order: list[str] = []

    def lease() -> None:
        with leases.leased(database, ["ab" * 32]):
            order.append("leased")

    with UnitOfWork(database) as uow:
        leases.lock_for_gc(uow.session)
        thread = threading.Thread(target=lease)
        thread.start()
        time.sleep(0.3)  # room for the lease to be taken, were it not for the lock
        order.append("gc done")
        uow.commit()
    thread.join(60)
    assert order == ["gc done", "leased"]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_gc_removes_no_bytes_of_a_record_its_delete_kept(database, production, settings, tmp_path):
    """PostgreSQL, where a version can commit between gc's listing and its DELETE (on SQLite
    gc's transaction holds the write lock throughout): gc used to remove the bytes of every
    blob listed, also of those its DELETE kept because a version had begun to use them."""
    kept = frames(tmp_path / "kept", "plate", 1001, 1001)
    orphan = frames(tmp_path / "orphan", "plate", 1001, 1001, salt=b"orphan")
    run_planned(database, settings, [planned(kept)])
    run_planned(database, settings, [planned(orphan, shot="sh020")])
    with UnitOfWork(database) as uow:
        representation = uow.session.scalars(select(Representation).order_by(Representation.id)).first()
        version = uow.session.scalars(select(Version).order_by(Version.id.desc())).first()
        orphan_blob = uow.session.get(Blob, version.representations[0].files[0].blob_id)
        orphan_id, orphan_hash = orphan_blob.id, orphan_blob.hash
        uow.session.execute(delete(Version).where(Version.id == version.id))
        uow.commit()

    def reference_it_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM BLOBS") and not used:
            used.append(1)
            with database.engine.connect() as other:
                other.execute(
                    text(
                        "INSERT INTO representation_files (representation_id, blob_id, name, frame) "
                        "VALUES (:rep, :blob, 'late.exr', NULL)"
                    ),
                    {"rep": representation.id, "blob": orphan_id},
                )
                other.commit()

    used: list[int] = []
    event.listen(database.engine, "before_cursor_execute", reference_it_first)
    try:
        report = upkeep.gc(database, settings, grace_hours=0)
    finally:
        event.remove(database.engine, "before_cursor_execute", reference_it_first)
    assert used and report.records_removed == 0
    assert BlobStore(settings.tier_roots["hot"]).rehash(orphan_hash) == orphan_hash
    assert_sound(database, settings)


# --------------------------------------------------------------------------- defect 5


def test_gc_in_a_tier_root_full_of_other_things_touches_none_of_them(
    database, production, settings, tmp_path
):
    scratch = tmp_path / "scratch"
    for rel in ("notes.txt", "tmp/report.pdf", "tmp/sub/deep.txt", "blobs/readme", "published/x/y.txt"):
        write(scratch / rel, rel.encode())
    (scratch / "tmp" / "a-folder").mkdir()
    (scratch / "tmp" / "link").symlink_to(tmp_path / "canary.txt")
    canary = write(tmp_path / "canary.txt", b"outside every tier")
    with UnitOfWork(database) as uow:
        uow.session.get(Project, production.project_id).storage_tiers = {"scratch": str(scratch)}
        uow.commit()
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003)
    plan = planning.plan_ingest(database, settings, project="DEMO", source=str(root), tier="scratch")
    for group in batches.batches(plan.pending, max_files=100, max_bytes=1 << 40):
        run_planned(database, settings, group, tier="scratch", source=plan.source)
    stale = write(scratch / "tmp" / ".tmp-1-0123456789ab-7", b"a crashed put's")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    before = {
        p: p.read_bytes() for p in scratch.rglob("*") if p.is_file() and not p.is_symlink() and p != stale
    }

    report = upkeep.gc(database, settings, grace_hours=0)
    assert (report.blobs_removed, report.temp_removed) == (0, 1)
    assert str(scratch) in report.roots
    assert report.skipped == 5
    assert any(
        s.startswith(f"{scratch}/tmp/sub: not a file this store wrote") for s in report.skipped_examples
    )
    assert {p: p.read_bytes() for p in scratch.rglob("*") if p.is_file() and not p.is_symlink()} == before
    assert (scratch / "tmp" / "a-folder").is_dir() and os.readlink(scratch / "tmp" / "link") == str(canary)
    assert canary.read_bytes() == b"outside every tier"
    assert_sound(database, settings)
