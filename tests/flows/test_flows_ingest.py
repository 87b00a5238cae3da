"""The ingest flow against a real Prefect server: runs, artifacts, dry runs, and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.models import IngestRecord
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import Version
from tests.support.ingest import OPERATOR, content, frames, write
from tests.support.runs import read_run

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_flow_reports_artifacts_and_a_dry_run_changes_nothing(
    database, production, flow_env, prefect_server, delivery
):
    from flows.ingest import ingest

    dry = ingest(actor=OPERATOR, project="DEMO", source=str(delivery), dry_run=True)
    assert (dry.planned_new, dry.created) == (3, [])
    assert dry.plan is not None and len(dry.plan.versions) == 3
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Version)) == 0

    state = ingest(actor=OPERATOR, project="DEMO", source=str(delivery), batch_files=4, return_state=True)
    summary = state.result()
    assert sorted(v.target for v in summary.created) == [
        "asset chair model main",
        "sq010/sh010 plate main",
        "sq010/sh020 plate main",
    ]
    run, artifacts = read_run(prefect_server, state.state_details.flow_run_id)
    assert run.state.is_completed()
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert "versions created | 3" in by_key["ingest-demo"].data
    table = by_key["ingest-demo-versions"].data
    assert "sq010/sh020 plate main" in str(table)

    rerun = ingest(actor=OPERATOR, project="DEMO", source=str(delivery))
    assert (rerun.created, rerun.known, rerun.files_copied) == ([], 3, 0)


CHILD = f"""
import sys
from flows.ingest import ingest
summary = ingest(actor={OPERATOR!r}, project="DEMO", source=sys.argv[1], batch_files=8)
print(len(summary.created))
"""


def run_child(delivery: Path, env: dict[str, str], kill_at: str | None) -> subprocess.Popen:
    child_env = {**os.environ, **env}
    child_env.pop("BIFROST_TEST_KILL_AT", None)
    if kill_at:
        child_env["BIFROST_TEST_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(delivery)],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_during_copy(child: subprocess.Popen, tier: Path) -> None:
    """SIGKILL the child as soon as a temporary blob file shows up in the tier."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if (tier / "tmp").is_dir() and any((tier / "tmp").iterdir()):
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    child.wait(60)


def check_consistent(database, store: BlobStore) -> None:
    """No blob at its final path is partial; every recorded file's blob is there and whole."""
    for info in store.iter_blobs():
        assert store.rehash(info.digest) == info.digest, f"partial or corrupt blob {info.digest}"
    with UnitOfWork(database) as uow:
        for digest in uow.session.scalars(select(Blob.hash)):
            assert store.rehash(digest) == digest, f"recorded blob {digest} is missing or damaged"
        keys = uow.session.scalars(select(IngestRecord.key)).all()
        assert len(keys) == len(set(keys))


@pytest.mark.slow
def test_kill_9_at_any_point_then_rerun_gives_exactly_the_expected_versions(
    database, production, settings, flow_env, prefect_api, tmp_path
):
    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1012, size=3000)
    frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1006, size=3000)
    # Big enough that the copy is still running when the test sees its temporary file.
    write(root / "sq010" / "sh020" / "plate" / "plate.mov", content(b"big movie", 192 << 20))
    write(root / "assets" / "chair" / "model" / "chair.abc", content(b"alembic", 5000))
    env = {**flow_env, "PREFECT_API_URL": prefect_api}
    tier = Path(settings.tier_roots["hot"])
    store = BlobStore(tier)

    child = run_child(root, env, None)
    kill_during_copy(child, tier)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    check_consistent(database, store)

    for point in ("stored", "flushed", "committed:1"):
        child = run_child(root, env, point)
        _, err = child.communicate(timeout=300)
        assert child.returncode == -signal.SIGKILL, f"{point}: {err.decode()[-2000:]}"
        check_consistent(database, store)

    child = run_child(root, env, None)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err.decode()[-2000:]
    check_consistent(database, store)
    with UnitOfWork(database) as uow:
        versions = uow.session.scalars(select(Version).order_by(Version.id)).all()
        assert sorted((v.shot_id is not None, v.number) for v in versions) == [
            (False, 1),
            (True, 1),
            (True, 1),
        ]
        # Row by row and blob by blob: every file of every version is the delivered bytes.
        delivered = {p.name: p for p in root.rglob("*") if p.is_file()}
        seen = set()
        for version in versions:
            for rep in version.representations:
                for file in rep.files:
                    digest = uow.session.get(Blob, file.blob_id).hash
                    with store.open(digest) as blob:
                        assert blob.read() == delivered[file.name].read_bytes(), file.name
                    seen.add((version.shot_id, version.asset_id, file.name))
        assert len(seen) == 12 + 7 + 1
    # A last rerun finds everything done.
    child = run_child(root, env, None)
    out, err = child.communicate(timeout=300)
    assert (child.returncode, out.decode().strip().splitlines()[-1]) == (0, "0"), err.decode()[-2000:]


def test_is_transient_tells_failures_worth_a_retry():
    from sqlalchemy.exc import OperationalError

    from bifrost_core.errors import ConfigError, DatabaseUnavailable, InvalidInput
    from bifrost_core.ingest.batches import is_transient
    from bifrost_core.storage.errors import StorageError, StorageFull, VerificationFailed

    assert is_transient(StorageError("storage tier hot: put_object: 503 SlowDown", tier="hot"))
    assert is_transient(VerificationFailed("storage tier hot: upload failed verification", tier="hot"))
    assert is_transient(DatabaseUnavailable("cannot reach the database"))
    assert is_transient(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert not is_transient(StorageFull("storage tier hot is full", tier="hot"))
    assert not is_transient(ConfigError("storage tier hot: bucket studio-hot does not exist"))
    assert not is_transient(InvalidInput("project DEMO has no storage tier 'cold'"))
    assert not is_transient(KeyError("a bug"))


@pytest.mark.parametrize(("error", "calls", "completed"), [("transient", 2, True), ("full", 1, False)])
def test_a_batch_is_retried_after_a_transient_failure_only(
    database, production, flow_env, prefect_server, delivery, monkeypatch, error, calls, completed
):
    import flows.ingest
    from bifrost_core.ingest import batches
    from bifrost_core.storage.errors import StorageError, StorageFull
    from flows.ingest import ingest

    real_store_files = batches.store_files
    seen = []

    def failing_once(*args, **kwargs):
        seen.append(1)
        if len(seen) == 1:
            cls = StorageError if error == "transient" else StorageFull
            raise cls("storage tier hot: injected failure", tier="hot")
        return real_store_files(*args, **kwargs)

    monkeypatch.setattr(batches, "store_files", failing_once)
    quick = flows.ingest.store_and_register.with_options(retry_delay_seconds=0)
    monkeypatch.setattr(flows.ingest, "store_and_register", quick)
    state = ingest(actor=OPERATOR, project="DEMO", source=str(delivery), return_state=True)
    assert len(seen) == calls
    assert state.is_completed() == completed
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Version)) == (3 if completed else 0)
