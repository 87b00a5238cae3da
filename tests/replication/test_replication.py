"""Replication of the hot tier (on one moto S3 server) to a second S3 endpoint (another moto
server) and to a folder: copies verified before they are recorded, lag before and after,
damage on a replica found by verify and copied again, an endpoint that is down, a copy
damaged between its write and its read-back, and configurations that are refused."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.events.models import Event
from bifrost_core.ingest import upkeep
from bifrost_core.ingest.roots import blob_store
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate
from bifrost_core.replication import service as replication
from bifrost_core.replication.models import BlobReplica
from bifrost_core.replication.roots import Replica
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from tests.replication.conftest import World, make_settings
from tests.support.ingest import frames, planned, run_planned, write
from tests.support.services import free_port

MiB = 1 << 20


def ingest(world: World, tmp_path: Path, name: str = "src") -> tuple[list[str], int]:
    """Three small frames and one of 6 MiB (streamed through a spool, not read whole) into
    hot; their digests and total size."""
    paths = frames(tmp_path / name, "plate", 1001, 1003, salt=name.encode())
    paths.append(write(tmp_path / name / "plate.1004.exr", os.urandom(6 * MiB)))
    run_planned(world.database, world.settings, [planned(paths)])
    digests = sorted(info.digest for info in hot(world).iter_blobs())
    return digests, sum(path.stat().st_size for path in paths)


def hot(world: World) -> BlobStore:
    return blob_store(world.settings, world.hot, "hot")


def stores(world: World) -> dict[str, BlobStore]:
    """The two replicas' stores, opened as the replication opens them."""
    return {
        root: replication.replica_store(world.settings, Replica("hot", root))
        for root in (world.s3_replica, world.folder_replica)
    }


def lag_of(world: World) -> dict[str, tuple[int, int, bool, int]]:
    """replica -> (blobs behind, bytes behind, has an oldest age, blobs replicated)."""
    found = replication.lag(world.database, replication.configured(world.database, world.settings))
    return {
        item.replica: (item.blobs, item.bytes, item.oldest_seconds is not None, item.replicated)
        for item in found
    }


def records(world: World) -> int:
    with UnitOfWork(world.database) as uow:
        return uow.session.scalar(select(func.count(BlobReplica.id)))


def events(world: World) -> list[dict]:
    """The payloads of the replication events."""
    with UnitOfWork(world.database) as uow:
        return list(
            uow.session.scalars(
                select(Event.payload).where(Event.kind == "storage.replicated").order_by(Event.id)
            )
        )


def test_replicates_to_a_second_endpoint_and_a_folder_and_reports_the_lag(
    database, production, world, tmp_path
) -> None:
    digests, size = ingest(world, tmp_path)
    assert len(digests) == 4
    before = lag_of(world)
    assert before == {world.s3_replica: (4, size, True, 0), world.folder_replica: (4, size, True, 0)}

    report = replication.replicate(database, world.settings, actor=SYSTEM)
    assert report.ok, report.problems
    assert [(o.replica, o.copied, o.bytes) for o in report.outcomes] == sorted(
        [(world.s3_replica, 4, size), (world.folder_replica, 4, size)]
    )
    for store in stores(world).values():
        assert {digest: store.rehash(digest) for digest in digests} == {digest: digest for digest in digests}
    assert Path(world.folder_replica, "blobs", digests[0][:2], digests[0]).is_file()
    after = {
        item.replica: (item.blobs, item.bytes, item.oldest_seconds, item.replicated) for item in report.lag
    }
    assert after == {world.s3_replica: (0, 0, None, 4), world.folder_replica: (0, 0, None, 4)}
    # One event for the run, not one per blob.
    [event] = events(world)
    assert (event["blobs"], event["bytes"]) == (8, 2 * size)
    assert {item["replica"] for item in event["replicas"]} == {world.s3_replica, world.folder_replica}

    # Idempotent: a second run finds nothing to do and records nothing more.
    again = replication.replicate(database, world.settings, actor=SYSTEM)
    assert (again.copied, records(world), len(events(world))) == (0, 8, 1)

    # New content is picked up by the next run; only it is copied.
    more, _ = ingest(world, tmp_path, "more")
    assert lag_of(world)[world.s3_replica][0] == 4
    assert replication.replicate(database, world.settings, actor=SYSTEM).copied == 8
    assert records(world) == 16 and len(more) == 8


def test_verify_finds_copies_deleted_or_damaged_on_a_replica_and_the_next_run_copies_them_again(
    database, production, world, tmp_path
) -> None:
    digests, _ = ingest(world, tmp_path)
    replication.replicate(database, world.settings, actor=SYSTEM)
    assert upkeep.verify(database, world.settings).ok

    s3_copy, folder_copy = stores(world)[world.s3_replica], stores(world)[world.folder_replica]
    assert s3_copy.delete(digests[0])
    damaged = Path(world.folder_replica, "blobs", digests[1][:2], digests[1])
    damaged.write_bytes(b"bit rot")
    report = upkeep.verify(database, world.settings)
    assert not report.ok
    assert (report.checked, report.copies_checked) == (4, 8)  # the primary's locations, the copies
    found = {(f.replica, f.hash, f.problem.split(" ")[0]) for f in report.findings}
    assert found == {(world.s3_replica, digests[0], "missing"), (world.folder_replica, digests[1], "corrupt")}
    # Their records are gone, so the lag counts them again and the next run copies them.
    assert {replica: behind[0] for replica, behind in lag_of(world).items()} == {
        world.s3_replica: 1,
        world.folder_replica: 1,
    }
    assert [item.blobs for item in report.replication] == [1, 1]

    rerun = replication.replicate(database, world.settings, actor=SYSTEM)
    assert rerun.copied == 2
    assert s3_copy.rehash(digests[0]) == digests[0] and folder_copy.rehash(digests[1]) == digests[1]
    assert upkeep.verify(database, world.settings).ok
    # A sample checks as many copies as asked, at random.
    sampled = upkeep.verify(database, world.settings, sample=3)
    assert (sampled.checked, sampled.copies_checked) == (3, 3)


def test_a_replica_endpoint_that_is_down_is_reported_and_nothing_is_recorded_for_it(
    database, production, world, tmp_path, primary_s3, replica_s3
) -> None:
    digests, size = ingest(world, tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down_options = {
        **replica_s3.storage_options,
        "endpoint_url": dead,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    down = make_settings(
        database,
        tmp_path / "down",
        primary_s3,
        replica_s3,
        hot_root=world.hot,
        storage_options={primary_s3.url(): primary_s3.storage_options, replica_s3.url(): down_options},
        storage_allowed_roots=[
            world.hot,
            world.settings.archive_root,
            replica_s3.url(),
            str(tmp_path / "dr"),
        ],
        storage_replicas={"hot": [world.s3_replica, world.folder_replica]},
    )
    report = replication.replicate(database, down.settings, actor=SYSTEM)
    assert not report.ok
    [problem] = report.problems
    assert problem.startswith(
        f"hot replica {world.s3_replica} unreachable: storage tier hot replica {world.s3_replica}"
    )
    assert "Could not connect to the endpoint URL" in problem and "\n" not in problem
    outcome = {o.replica: o for o in report.outcomes}
    assert outcome[world.s3_replica].copied == 0 and outcome[world.folder_replica].copied == 4
    assert lag_of(world)[world.s3_replica] == (4, size, True, 0)
    with UnitOfWork(database) as uow:
        replicas = set(uow.session.scalars(select(BlobReplica.replica)))
    assert replicas == {world.folder_replica}
    # verify says the replica cannot be read, without touching its records.
    checked = upkeep.verify(database, down.settings)
    assert checked.unreachable == [] and checked.ok  # no copy recorded there yet: nothing to read

    # The endpoint is back (same replica root, its live endpoint): the next run catches up.
    back = replication.replicate(database, world.settings, actor=SYSTEM)
    assert back.ok and {o.replica: o.copied for o in back.outcomes} == {
        world.s3_replica: 4,
        world.folder_replica: 0,
    }
    # Now with copies recorded there, a verify while it is down reports it and keeps them.
    checked = upkeep.verify(database, down.settings)
    assert not checked.ok and len(checked.unreachable) == 1
    assert checked.unreachable[0].startswith(f"hot replica {world.s3_replica} unreachable:")
    assert records(world) == 8 and len(digests) == 4


def test_a_copy_damaged_between_its_write_and_its_read_back_is_not_recorded(
    database, production, world, tmp_path
) -> None:
    digests, _ = ingest(world, tmp_path)
    victim = digests[2]

    def damage(store: BlobStore, digest: str) -> None:
        if digest != victim:
            return
        if store.is_local:
            store.local_path(digest).write_bytes(b"damaged on the way")
        else:
            store.delete(digest)  # lost between the write and the read-back

    report = replication.replicate(database, world.settings, actor=SYSTEM, after_write=damage)
    assert not report.ok
    for outcome in report.outcomes:
        assert (outcome.copied, outcome.failed) == (3, 1)
        [failure] = outcome.failures
        assert (
            failure.startswith(f"blob {victim}: copy at ") and "failed verification on read-back" in failure
        )
    with UnitOfWork(database) as uow:
        recorded = set(uow.session.scalars(select(BlobReplica.url).where(BlobReplica.url.like(f"%{victim}"))))
    assert recorded == set()
    # The next run (nothing in the way) replaces the bad copy and records it.
    rerun = replication.replicate(database, world.settings, actor=SYSTEM)
    assert rerun.ok and rerun.copied == 2
    assert all(store.rehash(victim) == victim for store in stores(world).values())


def test_a_damaged_primary_copy_is_not_replicated(database, production, world, tmp_path) -> None:
    digests, _ = ingest(world, tmp_path)
    store = hot(world)
    path = f"{world.hot.removeprefix('s3://')}/blobs/{digests[0][:2]}/{digests[0]}"
    store._tier.fs.pipe_file(path, b"rotten")  # the primary's bytes changed under Bifrost
    report = replication.replicate(database, world.settings, actor=SYSTEM)
    for outcome in report.outcomes:
        assert outcome.failed == 1 and "primary copy is damaged" in outcome.failures[0]
        assert outcome.copied == 3
    assert not any(s.exists(digests[0]) for s in stores(world).values())


def test_bad_replica_configuration_is_one_line(
    database, production, world, tmp_path, primary_s3, replica_s3
) -> None:
    messages: list[str] = []

    def refused(**overrides: object) -> str:
        with pytest.raises(ConfigError) as caught:
            make_settings(database, tmp_path / f"bad{len(messages)}", primary_s3, replica_s3, **overrides)
        messages.append(str(caught.value))
        return str(caught.value)

    assert refused(storage_replicas={"hot": ["s3://elsewhere/hot"]}).startswith(
        "BIFROST_STORAGE_REPLICAS: replica 's3://elsewhere/hot' of tier hot is not inside a root "
        "this deployment allows"
    )
    same = refused(hot_root=world.hot, storage_replicas={"hot": [world.hot]})
    assert "is the same as or nested with the root of tier hot" in same
    nested = refused(hot_root=world.hot, storage_replicas={"hot": [f"{world.hot}/copy"]})
    assert "nested with the root of tier hot" in nested
    assert "is not an absolute path" in refused(storage_replicas={"hot": ["relative/dr"]})
    assert "listed twice" in refused(storage_replicas={"hot": [world.s3_replica, world.s3_replica + "/"]})
    assert all("\n" not in message for message in messages)

    # Checked against the database's tiers when used: a tier no one has ...
    unknown = make_settings(
        database, tmp_path / "unknown", primary_s3, replica_s3, storage_replicas={"vault": [world.s3_replica]}
    )
    with pytest.raises(
        ConfigError,
        match=r"^BIFROST_STORAGE_REPLICAS: no storage tier named 'vault' \(tiers: archive, hot\)$",
    ):
        replication.replicate(database, unknown.settings, actor=SYSTEM)
    # ... becomes known once a project has it; a project's root on a replica is refused.
    with UnitOfWork(database) as uow:
        projects.create_project(
            uow.session,
            actor=SYSTEM,
            data=ProjectCreate(
                code="VLT", name="Vault", storage_tiers={"vault": str(tmp_path / "dr" / "vault")}
            ),
            allowed_roots=[str((tmp_path / "dr").resolve())],
        )
        uow.commit()
    assert replication.configured(database, unknown.settings) == [Replica("vault", world.s3_replica)]
    clash = make_settings(
        database,
        tmp_path / "clash",
        primary_s3,
        replica_s3,
        storage_replicas={"hot": [str(tmp_path / "dr")]},
        storage_allowed_roots=[world.hot, world.settings.archive_root, str(tmp_path / "dr")],
    )
    with pytest.raises(ConfigError, match="nested with the root of tier vault"):
        upkeep.verify(database, clash.settings)
    with pytest.raises(ConfigError, match="no storage tier named 'cold'"):
        replication.replicate(database, world.settings, actor=SYSTEM, tier="cold")


def test_two_runs_at_once_record_each_copy_once(database, production, world, tmp_path) -> None:
    """A scheduled run and one started by hand may overlap: both copy, each copy is recorded once."""
    ingest(world, tmp_path)
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(replication.replicate, database, world.settings, actor=SYSTEM, batch=1)
            for _ in range(2)
        ]
        reports = [run.result() for run in runs]
    assert all(report.ok for report in reports), [report.problems for report in reports]
    assert records(world) == 8
    assert [
        (lag.blobs, lag.replicated)
        for lag in replication.lag(database, replication.configured(database, world.settings))
    ] == [(0, 4)] * 2


def test_gc_sweeps_unrecorded_blobs_from_the_replicas_and_keeps_the_copies(
    database, production, world, tmp_path
) -> None:
    digests, _ = ingest(world, tmp_path)
    replication.replicate(database, world.settings, actor=SYSTEM)
    stray = write(tmp_path / "stray.bin", b"a blob whose record gc removed before it reached the replicas")
    replicas = stores(world)
    digest = {store.put_file(stray).digest for store in replicas.values()}.pop()

    planned_gc = upkeep.gc(database, world.settings, grace_hours=0, dry_run=True)
    assert {world.s3_replica, world.folder_replica} <= set(planned_gc.roots)
    assert planned_gc.blobs_removed == 2
    done = upkeep.gc(database, world.settings, grace_hours=0)
    assert done.blobs_removed == 2
    assert not any(store.exists(digest) for store in replicas.values())
    assert all(store.exists(kept) for store in replicas.values() for kept in digests)
    assert upkeep.verify(database, world.settings).ok


def test_a_run_that_dies_midway_is_completed_by_the_next(database, production, world, tmp_path) -> None:
    """A crash after some batches were recorded and one copy was written but not recorded: the
    next run records that copy once it checks, copies the rest, and nothing is recorded twice."""
    digests, _ = ingest(world, tmp_path)
    seen: list[str] = []

    def crash(store: BlobStore, digest: str) -> None:
        seen.append(digest)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the worker dies between the copy and its read-back

    with pytest.raises(KeyboardInterrupt):
        replication.replicate(database, world.settings, actor=SYSTEM, batch=1, after_write=crash)
    assert records(world) == 2  # the first replica's first two batches
    assert events(world) == []  # the run's event is written at its end

    rerun = replication.replicate(database, world.settings, actor=SYSTEM)
    assert rerun.ok and rerun.copied == 6
    assert records(world) == 8
    assert [(lag.blobs, lag.replicated) for lag in rerun.lag] == [(0, 4)] * 2
    assert all(store.rehash(digest) == digest for store in stores(world).values() for digest in digests)
