"""verify, gc and du over real stored blobs."""

from __future__ import annotations

import os

from sqlalchemy import delete, func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import upkeep
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import Version
from tests.support.ingest import frames, planned, run_planned


def test_verify_reports_a_corrupt_and_a_missing_blob(database, production, settings, tmp_path):
    paths = frames(tmp_path / "src", "plate", 1001, 1004)
    run_planned(database, settings, [planned(paths)])
    assert upkeep.verify(database, settings).ok
    store = BlobStore(settings.tier_roots["hot"])
    digests = sorted(info.digest for info in store.iter_blobs())
    corrupt, missing = store.local_path(digests[0]), store.local_path(digests[1])
    corrupt.chmod(0o644)
    data = bytearray(corrupt.read_bytes())
    data[10] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    missing.unlink()
    report = upkeep.verify(database, settings)
    assert report.checked == 4
    found = {finding.hash: finding.problem for finding in report.findings}
    assert found[digests[1]] == "missing"
    assert found[digests[0]].startswith("corrupt")
    assert len(found) == 2
    assert upkeep.verify(database, settings, sample=2).checked == 2


def test_gc_removes_unreferenced_blobs_and_unrecorded_copies(database, production, settings, tmp_path):
    kept = frames(tmp_path / "kept", "plate", 1001, 1002)
    run_planned(database, settings, [planned(kept)])
    store = BlobStore(settings.tier_roots["hot"])
    # A copy a crashed ingest left behind (stored, never recorded), and a record nothing uses.
    stray = store.put_file(frames(tmp_path / "stray", "x", 1, 1)[0])
    orphan = frames(tmp_path / "orphan", "plate", 1001, 1001, salt=b"orphan")
    run_planned(database, settings, [planned(orphan, shot="sh020")])
    with UnitOfWork(database) as uow:
        version = uow.session.scalars(
            select(Version).where(Version.shot_id.is_not(None)).order_by(Version.id.desc())
        ).first()
        orphan_hash = uow.session.get(Blob, version.representations[0].files[0].blob_id).hash
        # A version removed by hand (the database cascades to its representations and files).
        uow.session.execute(delete(Version).where(Version.id == version.id))
        uow.commit()

    young = upkeep.gc(database, settings, grace_hours=1)
    assert (young.records_removed, young.blobs_removed) == (0, 0)
    assert store.exists(stray.digest)

    report = upkeep.gc(database, settings, grace_hours=0)
    assert report.records_removed == 1
    assert report.blobs_removed == 2
    assert not store.exists(stray.digest)
    assert not store.exists(orphan_hash)
    assert upkeep.verify(database, settings).ok
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Blob)) == 2
    assert sorted(os.listdir(tmp_path / "kept")) == ["plate.1001.exr", "plate.1002.exr"]


def test_du_counts_bytes_per_project_and_tier(database, production, settings, tmp_path):
    paths = frames(tmp_path / "src", "plate", 1001, 1003, size=4096)
    run_planned(database, settings, [planned(paths)])
    usage = upkeep.du(database)
    assert [(u.project, u.tier, u.blobs, u.bytes) for u in usage] == [("DEMO", "hot", 3, 3 * 4096)]
    assert [(u.tier, u.bytes) for u in upkeep.tier_totals(database)] == [("hot", 3 * 4096)]
    physical = upkeep.physical(settings, upkeep.tier_roots(database, settings).items())
    assert ("hot", settings.tier_roots["hot"], 3 * 4096) in physical
