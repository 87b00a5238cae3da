"""Replication of stored content: each blob location copied to every replica of its tier,
read back there and hashed before its copy is recorded; the lag of each replica; the check
of recorded copies that `verify` runs.

The order is copy -> read back and BLAKE3 -> record, so a crash, a replica that goes away
or bytes damaged on the way never leave a record of a copy that is not there: the next run
finds the location still unreplicated and copies it again (a copy already in place is
reused by the store once it is shown to hold the right bytes). Large blobs stream through
fixed-size buffers: from a local tier the store reads the file itself, from an object store
a blob is spooled to a temporary local file first.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import blake3
from sqlalchemy import and_, exists, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError

from bifrost_core.config import Settings
from bifrost_core.db.base import UtcDateTime, utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, ConfigError
from bifrost_core.events.service import record
from bifrost_core.ingest.roots import blob_store, copy_workers, every_root
from bifrost_core.replication.models import BlobReplica
from bifrost_core.replication.roots import Replica, check_replica_roots, check_tiers_known
from bifrost_core.scope import Actor
from bifrost_core.storage.blobstore import BlobStore, root_of
from bifrost_core.storage.blobstore.tier import CHUNK
from bifrost_core.storage.errors import SourceError
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.storage.roots import normalise_root

# Locations per batch: copied, then recorded in one transaction (what a crash can lose).
BATCH = 200
# At most this many failures are listed per replica in a report (all are counted).
SHOWN_FAILURES = 20

# Called between a copy's write and its read-back, with the replica's store and the digest:
# the tests damage the copy there to show that a damaged copy is never recorded.
AfterWrite = Callable[[BlobStore, str], None]


def configured(database: Database, settings: Settings, *, tier: str | None = None) -> list[Replica]:
    """The replicas of the settings (of `tier` only, if given), once checked against the
    tiers in use, the studio's and every project's: ConfigError for a tier no one has, or
    a replica that is (or nests with) a project's own tier root."""
    primaries: dict[str, list[str]] = {}
    for root in every_root(database, settings):
        primaries.setdefault(root.tier, []).append(normalise_root(root.root))
    try:
        check_tiers_known(settings.storage_replicas, primaries)
        check_replica_roots(settings.storage_replicas, primaries, settings.allowed_storage_roots)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if tier is not None and tier not in primaries:
        raise ConfigError(f"no storage tier named {tier!r} (tiers: {', '.join(sorted(primaries))})")
    return sorted(
        Replica(name, root)
        for name, roots in settings.storage_replicas.items()
        if tier is None or name == tier
        for root in roots
    )


def check_replicas(database: Database, settings: Settings) -> None:
    """For `bifrost init`: every replica is configured right and takes a write (BlobStore.check);
    one ConfigError or StorageError line naming each that does not, after all were tried."""
    errors: list[BifrostError] = []
    for replica in configured(database, settings):
        try:
            replica_store(settings, replica).check()
        except BifrostError as exc:
            errors.append(exc)
    if errors:
        kind = ConfigError if any(isinstance(error, ConfigError) for error in errors) else type(errors[0])
        raise kind("; ".join(str(error) for error in errors))


def replica_store(settings: Settings, replica: Replica) -> BlobStore:
    return blob_store(settings, replica.root, replica.label)


def _copied(replica: Replica) -> Any:
    """SQL: the blob location has a recorded copy on `replica`."""
    return exists().where(BlobReplica.location_id == BlobLocation.id, BlobReplica.replica == replica.root)


# ---------------------------------------------------------------------------------- lag


@dataclass
class ReplicaLag:
    """How far a replica is behind its tier: locations (blobs) and bytes not yet copied and
    verified there, and the age of the oldest of them (None when there is none)."""

    tier: str
    replica: str
    blobs: int
    bytes: int
    oldest_seconds: float | None
    replicated: int


def lag(database: Database, replicas: Collection[Replica]) -> list[ReplicaLag]:
    """The lag of each replica, from the records (one count per replica, no store touched)."""
    now = utcnow()
    out = []
    with UnitOfWork(database) as uow:
        for replica in replicas:
            behind = uow.session.execute(
                select(func.count(BlobLocation.id), func.sum(Blob.size), func.min(BlobLocation.created_at))
                .join(Blob, Blob.id == BlobLocation.blob_id)
                .where(BlobLocation.tier == replica.tier, ~_copied(replica))
            ).one()
            done = uow.session.scalar(
                select(func.count(BlobReplica.id))
                .join(BlobLocation, BlobLocation.id == BlobReplica.location_id)
                .where(BlobLocation.tier == replica.tier, BlobReplica.replica == replica.root)
            )
            count, size, oldest = behind
            age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
            out.append(ReplicaLag(replica.tier, replica.root, count, int(size or 0), age, done or 0))
    return out


# ----------------------------------------------------------------------------- replicate


@dataclass
class ReplicaOutcome:
    """What a run did for one replica. `unreachable`: why the replica could not be written
    (its endpoint down, a bucket gone, full): the run stopped there and the next run
    resumes; `failures`: blobs that could not be copied (their primary copy unreadable or
    damaged, the copy damaged on the way), each left unrecorded."""

    tier: str
    replica: str
    copied: int = 0
    bytes: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    unreachable: str | None = None

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.failures) < SHOWN_FAILURES:
            self.failures.append(message)


@dataclass
class ReplicationReport:
    outcomes: list[ReplicaOutcome] = field(default_factory=list)
    lag: list[ReplicaLag] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(outcome.copied for outcome in self.outcomes)

    @property
    def bytes(self) -> int:
        return sum(outcome.bytes for outcome in self.outcomes)

    @property
    def problems(self) -> list[str]:
        """One line per replica that was unreachable or had blobs it could not take."""
        lines = []
        for outcome in self.outcomes:
            if outcome.unreachable:
                lines.append(f"{outcome.tier} replica {outcome.replica} unreachable: {outcome.unreachable}")
            elif outcome.failed:
                lines.append(f"{outcome.tier} replica {outcome.replica}: {outcome.failed} blob(s) not copied")
        return lines

    @property
    def ok(self) -> bool:
        return not self.problems


class _ReplicaDown(Exception):
    """The replica's store failed (not the blob): the rest of the replica waits for the next run."""


@dataclass(frozen=True)
class _Pending:
    location_id: int
    digest: str
    size: int
    tier: str
    url: str


def replicate(
    database: Database,
    settings: Settings,
    *,
    actor: Actor,
    tier: str | None = None,
    batch: int = BATCH,
    after_write: AfterWrite | None = None,
) -> ReplicationReport:
    """Copy every blob location not yet on each replica of its tier there, verify and
    record it; one `storage.replicated` event for the run (when anything was copied).
    A replica that cannot be written is reported and skipped; the others go on."""
    replicas = configured(database, settings, tier=tier)
    report = ReplicationReport()
    for replica in replicas:
        outcome = ReplicaOutcome(replica.tier, replica.root)
        report.outcomes.append(outcome)
        _replicate_one(database, settings, replica, outcome, batch, after_write)
    if report.copied:
        with UnitOfWork(database) as uow:
            record(
                uow.session,
                actor=actor,
                kind="storage.replicated",
                entity_type="storage",
                entity_id=None,
                project_id=None,
                payload={
                    "blobs": report.copied,
                    "bytes": report.bytes,
                    "replicas": [
                        {"tier": o.tier, "replica": o.replica, "blobs": o.copied, "bytes": o.bytes}
                        for o in report.outcomes
                        if o.copied
                    ],
                },
            )
            uow.commit()
    report.lag = lag(database, replicas)
    return report


def _replicate_one(
    database: Database,
    settings: Settings,
    replica: Replica,
    outcome: ReplicaOutcome,
    batch: int,
    after_write: AfterWrite | None,
) -> None:
    try:
        store = replica_store(settings, replica)
        store.check()
    except BifrostError as exc:
        outcome.unreachable = str(exc)
        return
    after = 0
    while True:
        with UnitOfWork(database) as uow:
            rows = uow.session.execute(
                select(BlobLocation.id, Blob.hash, Blob.size, BlobLocation.tier, BlobLocation.url)
                .join(Blob, Blob.id == BlobLocation.blob_id)
                .where(BlobLocation.tier == replica.tier, BlobLocation.id > after, ~_copied(replica))
                .order_by(BlobLocation.id)
                .limit(batch)
            ).all()
        if not rows:
            return
        after = rows[-1].id
        pending = [_Pending(*row) for row in rows]
        copied, down = _copy_batch(settings, store, pending, outcome, after_write)
        _record(database, replica, copied)
        outcome.copied += len(copied)
        outcome.bytes += sum(item.size for item, _url in copied)
        if down is not None:
            outcome.unreachable = down
            return


def _copy_batch(
    settings: Settings,
    store: BlobStore,
    pending: list[_Pending],
    outcome: ReplicaOutcome,
    after_write: AfterWrite | None,
) -> tuple[list[tuple[_Pending, str]], str | None]:
    """Copy a batch on the replica's usual number of threads: the copies verified (with
    their URL on the replica) and, if the replica failed, why (the rest of the batch is
    left for the next run)."""
    copied: list[tuple[_Pending, str]] = []
    down: list[str] = []
    lock = threading.Lock()
    todo = iter(pending)  # each worker takes the next item (atomic under the GIL)

    def run() -> None:
        for item in todo:
            if down:
                return
            try:
                url = _copy(settings, store, item, after_write)
            except _ReplicaDown as exc:
                with lock:
                    down.append(str(exc))
                return
            except BifrostError as exc:
                with lock:
                    outcome.fail(f"blob {item.digest}: {exc}")
                continue
            with lock:
                copied.append((item, url))

    workers = min(copy_workers(store), len(pending))
    with ThreadPoolExecutor(workers, "replicate") as pool:
        for future in [pool.submit(run) for _ in range(workers)]:
            future.result()
    return copied, (down[0] if down else None)


def _copy(settings: Settings, store: BlobStore, item: _Pending, after_write: AfterWrite | None) -> str:
    """Copy one blob to the replica, read it back and check its BLAKE3; its URL there.
    BifrostError for this blob's failure, _ReplicaDown for the replica's."""
    source = blob_store(settings, root_of(item.url, item.digest), item.tier)
    with _readable(source, item.digest) as path:
        try:
            put = store.put_file(path)
        except SourceError as exc:
            raise BifrostError(f"primary copy unreadable: {exc.reason}") from None
        except BifrostError as exc:
            raise _ReplicaDown(str(exc)) from exc
    if put.digest != item.digest:
        raise BifrostError(f"primary copy at {item.url} is damaged (its bytes hash to {put.digest})")
    if after_write is not None:
        after_write(store, item.digest)
    try:
        found = store.rehash(item.digest)
    except BifrostError as exc:
        raise _ReplicaDown(str(exc)) from exc
    if found != item.digest:
        seen = "missing" if found is None else f"its bytes hash to {found}"
        raise BifrostError(f"copy at {put.url} failed verification on read-back ({seen}); not recorded")
    return put.url


@contextlib.contextmanager
def _readable(source: BlobStore, digest: str) -> Iterator[str]:
    """A local file holding the blob: its own path on a local tier, else a temporary spool
    filled a buffer at a time and checked against the digest (a damaged primary is refused)."""
    path = source.local_path(digest)
    if path is not None:
        yield str(path)
        return
    with tempfile.NamedTemporaryFile(prefix="bifrost-replica-") as spool:
        hasher = blake3.blake3()
        try:
            with source.open(digest) as blob:
                while chunk := blob.read(CHUNK):
                    hasher.update(chunk)
                    spool.write(chunk)
        except BifrostError as exc:
            raise BifrostError(f"primary copy unreadable: {exc}") from None
        except Exception as exc:  # the backend's own error while streaming (botocore, OSError)
            raise BifrostError(f"primary copy unreadable: {type(exc).__name__}: {exc}") from None
        if hasher.hexdigest() != digest:
            raise BifrostError(f"primary copy is damaged (its bytes hash to {hasher.hexdigest()})")
        spool.flush()
        yield spool.name


def _record(database: Database, replica: Replica, copied: list[tuple[_Pending, str]]) -> None:
    """Record verified copies, each only while its location still exists and has no record
    (a location removed meanwhile by gc or a tier move takes nothing with it).

    Two runs at once (a scheduled one and one started by hand in-process) may copy the same
    blobs: on PostgreSQL the later insert of a record then waits for the other's commit and
    fails on the unique key (or on the foreign key of a location deleted meanwhile), and the
    batch is recorded again, where the committed rows are seen and skipped."""
    if not copied:
        return
    try:
        _insert(database, replica, copied)
    except IntegrityError:
        _insert(database, replica, copied)


def _insert(database: Database, replica: Replica, copied: list[tuple[_Pending, str]]) -> None:
    now = utcnow()
    with UnitOfWork(database) as uow:
        for item, url in copied:
            uow.session.execute(
                insert(BlobReplica).from_select(
                    ["location_id", "replica", "url", "created_at", "verified_at"],
                    select(
                        BlobLocation.id,
                        literal(replica.root),
                        literal(url),
                        literal(now, UtcDateTime()),
                        literal(now, UtcDateTime()),
                    ).where(BlobLocation.id == item.location_id, ~_copied(replica)),
                )
            )
        uow.commit()


# -------------------------------------------------------------------------------- verify


@dataclass
class ReplicaFinding:
    hash: str
    tier: str
    replica: str
    url: str
    problem: str


@dataclass
class ReplicaCheck:
    """What `verify_copies` found: copies checked, those missing or damaged (their records
    removed, so the next replicate run copies them again), and replicas it could not read."""

    checked: int = 0
    findings: list[ReplicaFinding] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


def verify_copies(
    database: Database, settings: Settings, replicas: Collection[Replica], *, sample: int | None = None
) -> ReplicaCheck:
    """Rehash the copies recorded on `replicas` (or a random sample of them)."""
    check = ReplicaCheck()
    if not replicas:
        return check
    with UnitOfWork(database) as uow:
        stmt = (
            select(BlobReplica.id, Blob.hash, BlobLocation.tier, BlobReplica.replica, BlobReplica.url)
            .join(BlobLocation, BlobLocation.id == BlobReplica.location_id)
            .join(Blob, Blob.id == BlobLocation.blob_id)
            .where(or_(*(and_(BlobLocation.tier == r.tier, BlobReplica.replica == r.root) for r in replicas)))
        )
        ordered = stmt.order_by(BlobReplica.id)
        stmt = stmt.order_by(func.random()).limit(sample) if sample is not None else ordered
        rows = uow.session.execute(stmt).all()
    good: list[int] = []
    gone: list[int] = []
    for replica in replicas:
        mine = [row for row in rows if (row.tier, row.replica) == (replica.tier, replica.root)]
        if not mine:
            continue
        store = replica_store(settings, replica)
        try:
            damaged = store.damaged([row.hash for row in mine])
            problems = {digest: store.rehash(digest) for digest in damaged}
        except BifrostError as exc:
            check.unreachable.append(f"{replica.label} unreachable: {exc}")
            continue
        check.checked += len(mine)
        for row in mine:
            if row.hash not in problems:
                good.append(row.id)
                continue
            found = problems[row.hash]
            problem = "missing" if found is None else f"corrupt (its bytes hash to {found})"
            check.findings.append(ReplicaFinding(row.hash, row.tier, row.replica, row.url, problem))
            gone.append(row.id)
    now = utcnow()
    table = BlobReplica.__table__
    with UnitOfWork(database) as uow:
        for start in range(0, max(len(good), len(gone)), 500):
            if good[start : start + 500]:
                uow.session.execute(
                    table.update().where(table.c.id.in_(good[start : start + 500])).values(verified_at=now)
                )
            if gone[start : start + 500]:
                uow.session.execute(table.delete().where(table.c.id.in_(gone[start : start + 500])))
        uow.commit()
    return check


def replica_roots(settings: Settings) -> dict[str, str]:
    """root -> store name of every configured replica, for gc (it sweeps what no blob
    record knows from them too)."""
    return {
        root: Replica(tier, root).label for tier, roots in settings.storage_replicas.items() for root in roots
    }
