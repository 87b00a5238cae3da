"""The ingest machinery as plain functions over plain data: plan (bifrost_core.ingest.planning),
store a batch, register.

Prefect tasks wrap these one to one; the CLI and tests can also call them directly.
Each function opens its own units of work: it gets a Database, never a session.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, DatabaseUnavailable, StorageError
from bifrost_core.ingest import progress, repair, repository, service
from bifrost_core.ingest.entities import Entities
from bifrost_core.ingest.planning import plan_ingest as plan_ingest
from bifrost_core.ingest.planning import plan_publish as plan_publish
from bifrost_core.ingest.planning import source_file as source_file
from bifrost_core.ingest.roots import blob_store, copy_workers, tier_root
from bifrost_core.ingest.schemas import (
    CreatedVersion,
    HeldBack,
    IngestPlan,
    IngestSummary,
    PlannedVersion,
    Problem,
    SourceFile,
    StoredBlob,
    StoreResult,
)
from bifrost_core.projects.models import Project
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import Actor
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.durability import sync_filesystem
from bifrost_core.storage.errors import PutFailed, SourceError, StorageFull, storage_error
from bifrost_core.storage.paths import (
    PublishTemplates,
    default_publish_root,
    materialise,
)

# One put_files call (one filesystem sync, on a local tier) per this many files or bytes:
# large enough that syncs stay a small share of the time and few chunks wait for their
# slowest file (the local store writes large files past the page cache, or starts their
# write-back as it copies, so the sync finds little left), small enough that a crash
# re-copies little. An object store needs no sync: its chunks are bounded by count only.
CHUNK_FILES = 1000
CHUNK_BYTES = 4 << 30


def project_store(database: Database, settings: Settings, project: str, tier: str) -> tuple[int, BlobStore]:
    with UnitOfWork(database) as uow:
        found = ProjectRepository(uow.session).by_code(project)
        return found.id, blob_store(settings, tier_root(settings, found, tier), tier)


def crash_point(name: str) -> None:
    """Kill this process at a named point when the crash-safety tests ask for it.

    BIFROST_TEST_KILL_AT is `stored` (blobs durable, nothing registered), `leased` (the
    batch's blobs leased), `flushed` (a version flushed, not committed) or `committed:N`
    (after N versions committed).
    """
    if os.environ.get("BIFROST_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def batches(
    versions: Sequence[PlannedVersion], *, max_files: int, max_bytes: int
) -> list[list[PlannedVersion]]:
    """Whole versions grouped into batches of about max_files files or max_bytes bytes."""
    out: list[list[PlannedVersion]] = []
    files = size = 0
    for version in versions:
        if out and out[-1] and files + len(version.files) <= max_files and size + version.size <= max_bytes:
            out[-1].append(version)
            files += len(version.files)
            size += version.size
        else:
            out.append([version])
            files, size = len(version.files), version.size
    return out


def _chunks(files: Sequence[SourceFile], max_bytes: float) -> list[list[SourceFile]]:
    out: list[list[SourceFile]] = []
    count = size = 0
    for file in files:
        if not out or count >= CHUNK_FILES or size + file.size > max_bytes:
            out.append([])
            count = size = 0
        out[-1].append(file)
        count += 1
        size += file.size
    return out


def store_files(
    database: Database, store: BlobStore, *, tier: str, files: Sequence[SourceFile]
) -> StoreResult:
    """Make every file's content durable in the tier; a file whose content the tier already
    records (known from its fingerprint) is not read again once its blob is rehashed.

    Returns path -> blob, the per-file problems, the files and bytes copied, and the blobs
    found missing or damaged and stored again.
    """
    result = StoreResult()
    reuse, bad = repair.reusable(database, store, tier, files, workers=copy_workers(store))
    todo: list[SourceFile] = []
    for file in files:
        if file.hash and file.hash in reuse:
            result.blobs[file.path] = StoredBlob(hash=file.hash, size=file.size, url=reuse[file.hash])
        else:
            todo.append(file)
    progress.advance(len(files) - len(todo), sum(f.size for f in files if f.path in result.blobs))

    for chunk in _chunks(todo, CHUNK_BYTES if store.is_local else float("inf")):
        try:
            stored = store.put_files(
                [file.path for file in chunk],
                workers=copy_workers(store),
                on_done=functools.partial(_advance_progress, chunk),
            )
        except PutFailed as exc:
            stored = exc.stored
            result.problems.extend(
                Problem(path=failure.path, message=failure.reason) for failure in exc.failures
            )
        for blob in stored:
            result.blobs[str(blob.source)] = StoredBlob(hash=blob.digest, size=blob.size, url=blob.url)
            if blob.new:
                result.files_copied += 1
                result.bytes_copied += blob.size
            if blob.repaired or blob.digest in bad:
                result.repaired.add(blob.digest)
    _check_unchanged(files, result.blobs, result.problems)
    return result


def _advance_progress(chunk: Sequence[SourceFile], index: int) -> None:
    progress.advance(1, chunk[index].size)


def _check_unchanged(
    files: Sequence[SourceFile], blobs: dict[str, StoredBlob], problems: list[Problem]
) -> None:
    """A file that moved since it was scanned is not what the plan describes: report it.

    The store re-reads a file that changes during its copy; this catches a change between
    the scan and the copy (and keeps the fingerprint honest).
    """
    for file in files:
        if file.path not in blobs:
            continue
        try:
            st = os.stat(file.path)
        except OSError as exc:
            del blobs[file.path]
            problems.append(Problem(path=file.path, message=f"disappeared during ingest: {exc.strerror}"))
            continue
        if st.st_size != file.size or st.st_mtime_ns != file.mtime_ns or blobs[file.path].size != file.size:
            del blobs[file.path]
            problems.append(
                Problem(path=file.path, message="changed while being ingested; run the ingest again")
            )


def register(
    database: Database,
    store: BlobStore,
    *,
    actor: Actor,
    project_id: int,
    tier: str,
    source: str,
    versions: Sequence[PlannedVersion],
    blobs: dict[str, StoredBlob],
    failures: dict[str, Problem],
    problems: list[Problem],
    held_back: list[HeldBack],
    comment: str = "",
    meta: dict | None = None,
) -> tuple[list[CreatedVersion], int]:
    """One transaction per version; a version with any file problem is held back whole.

    `failures` holds the problem of each source path that could not be stored. A version
    held back is added to `held_back` with its problems; problems met here (a file whose
    name gives no published path, a conflicting write) are added to `problems` too.

    Published paths are linked inside each version's transaction, before its commit, so a
    kill at any point leaves either the version and its links or neither (a rerun gets the
    same number and links the same paths). They are synced to disk once for the batch, at
    its end: after a power loss a batch's links can need a rerun, like SQLite's last
    commits (WAL, synchronous=NORMAL) would.

    Returns the versions created and how many were found already ingested (by a crashed
    run that committed, or a concurrent one).
    """
    created: list[CreatedVersion] = []
    known = 0
    with UnitOfWork(database) as uow:
        entities = Entities.load(uow.session, project_id)
        project = uow.session.get(Project, project_id)
        assert project is not None
        code, path_templates = project.code, (project.config or {}).get("path_templates")
    # Parsed at the first version, once per batch (a bad one is reported for each version).
    templates: PublishTemplates | None = None
    for planned in versions:
        failed = [file.path for file in planned.files if file.path in failures or file.path not in blobs]
        if planned.status == "known":
            # Here only for its missing blobs: stored again from sources that must still
            # hold the recorded bytes, else the version would be registered anew.
            failed += [f.path for f in planned.files if f.path in blobs and blobs[f.path].hash != f.hash]
            if failed:
                problems.append(
                    Problem(
                        path=planned.representations[0].source,
                        message=f"version {planned.target.label} v{planned.version_number or 0:03d} has "
                        f"{planned.missing} blob(s) missing from tier {tier}, not repaired: "
                        f"{len(failed)} of its source file(s) failed or no longer hold the recorded bytes",
                    )
                )
                continue
        elif failed:
            reasons = [
                failures.get(path) or Problem(path=within(path, source), message="not stored")
                for path in failed
            ]
            held_back.append(HeldBack(target=planned.target.label, problems=reasons))
            continue
        problem: Problem | None = None
        try:
            templates = templates or PublishTemplates.from_config(path_templates)
            with UnitOfWork(database) as uow:
                registered = service.register_version(
                    uow.session,
                    actor=actor,
                    project_id=project_id,
                    planned=planned,
                    blobs=blobs,
                    tier=tier,
                    source=source,
                    templates=templates,
                    project_code=code,
                    comment=comment,
                    meta=meta,
                    entities=entities,
                )
                done = None if registered is None else registered[0]
                if registered is not None and store.is_local:
                    # Before the commit: a failure rolls the version back, and a rerun (which
                    # gets the same number) links the same paths again.
                    materialise(store, registered[1], sync=False)
                crash_point("flushed")
                uow.commit()
        except IntegrityError as exc:
            if _already_ingested(database, project_id, planned):
                known += 1  # a concurrent run committed the same content first
                continue
            message = f"conflicting write: {exc.orig}"
            problem = Problem(path=planned.representations[0].source, message=message)
        except SourceError as exc:  # a file of the version, named: the one at fault
            problem = Problem(path=within(exc.path, source), message=exc.reason)
        except BifrostError as exc:
            problem = Problem(path=planned.representations[0].source, message=str(exc))
        if problem is not None:
            problems.append(problem)
            held_back.append(HeldBack(target=planned.target.label, problems=[problem]))
        elif done is None:
            known += 1
        else:
            created.append(done)
            crash_point(f"committed:{len(created)}")
    if created and store.is_local:
        try:
            sync_filesystem(default_publish_root(store))
        except OSError as exc:
            raise storage_error(store.name, "syncing published paths", exc) from exc
    return created, known


def within(path: str, source: str) -> str:
    """`path` relative to the delivery folder when it is inside it, as problems name files."""
    prefix = source.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def is_transient(exc: BaseException) -> bool:
    """Whether a failed batch may succeed if simply run again: the store or the database
    failed or could not be reached. Not a full disk, not a missing bucket or folder (a
    ConfigError), not bad input, not a bug. Running a batch again is safe: what it stored
    is found, what it registered is known."""
    if isinstance(exc, StorageFull):
        return False
    return isinstance(exc, StorageError | DatabaseUnavailable | OperationalError | InterfaceError)


def _already_ingested(database: Database, project_id: int, planned: PlannedVersion) -> bool:
    with UnitOfWork(database) as uow:
        key = service.content_key(project_id, planned)
        return bool(repository.records(uow.session, project_id, [key]))


def run_batch(
    database: Database,
    settings: Settings,
    *,
    project: str,
    tier: str,
    source: str,
    versions: Sequence[PlannedVersion],
    actor: Actor,
    comment: str = "",
    meta: dict | None = None,
) -> IngestSummary:
    """Store the files of a batch of versions (durable), lease their blobs (so that `storage
    gc` keeps off them), store again any that went before the lease, register each version,
    and release the leases."""
    project_id, store = project_store(database, settings, project, tier)
    files = [file for version in versions for file in version.files]
    stored = store_files(database, store, tier=tier, files=files)
    crash_point("stored")
    held_back: list[HeldBack] = []
    with leases.leased(database, {blob.hash for blob in stored.blobs.values()}):
        crash_point("leased")
        repair.restore_missing(store, stored, workers=copy_workers(store))
        repair.relink_published(database, store, stored.repaired)
        failures = {
            problem.path: Problem(path=within(problem.path, source), message=problem.message)
            for problem in stored.problems
        }
        problems = list(failures.values())
        created, known = register(
            database,
            store,
            actor=actor,
            project_id=project_id,
            tier=tier,
            source=source,
            versions=versions,
            blobs=stored.blobs,
            failures=failures,
            problems=problems,
            held_back=held_back,
            comment=comment,
            meta=meta,
        )
    return IngestSummary(
        project=project,
        source=source,
        tier=tier,
        known=known,
        created=created,
        problems=problems,
        held_back=held_back,
        files=len(files),
        bytes=sum(file.size for file in files),
        files_copied=stored.files_copied,
        bytes_copied=stored.bytes_copied,
        blobs_repaired=len(stored.repaired),
    )


def summary_of(plan: IngestPlan, *, dry_run: bool) -> IngestSummary:
    """The summary of a run before any batch: what the plan found."""
    return IngestSummary(
        project=plan.project,
        source=plan.source,
        tier=plan.tier,
        dry_run=dry_run,
        planned_new=plan.count("new"),
        planned_changed=plan.count("changed"),
        # A known version with missing blobs is counted by the batch that repairs it.
        known=plan.count("known") - (0 if dry_run else sum(1 for v in plan.versions if v.missing)),
        unmatched=plan.unmatched,
        problems=list(plan.problems),
        held_back=list(plan.held_back),
        files=sum(len(version.files) for version in plan.versions),
        bytes=sum(version.size for version in plan.versions),
        plan=plan if dry_run else None,
    )


def merge(summary: IngestSummary, batch: IngestSummary) -> None:
    """Add one batch's outcome to the run's summary."""
    summary.known += batch.known
    summary.created.extend(batch.created)
    summary.problems.extend(batch.problems)
    summary.held_back.extend(batch.held_back)
    summary.files_copied += batch.files_copied
    summary.bytes_copied += batch.bytes_copied
    summary.blobs_repaired += batch.blobs_repaired


def record_summary(database: Database, *, summary: IngestSummary, kind: str, actor: Actor) -> None:
    """The run's event (counts and created version ids), in its own transaction."""
    with UnitOfWork(database) as uow:
        project_id = ProjectRepository(uow.session, actor).by_code(summary.project).id
        service.record_summary(
            uow.session,
            actor=actor,
            project_id=project_id,
            summary={
                "kind": kind,
                "source": service.printable(summary.source),
                "tier": summary.tier,
                "created": [version.version_id for version in summary.created],
                "known": summary.known,
                "unmatched": len(summary.unmatched),
                "problems": len(summary.problems),
                "held_back": [held.target for held in summary.held_back],
                "files_copied": summary.files_copied,
                "bytes_copied": summary.bytes_copied,
                "blobs_repaired": summary.blobs_repaired,
            },
        )
        uow.commit()
