"""The ingest machinery as plain functions over plain data: plan, store a batch, register.

Prefect tasks wrap these one to one; the CLI and tests can also call them directly.
Each function opens its own units of work: it gets a Database, never a session.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, DatabaseUnavailable, InvalidInput, StorageError
from bifrost_core.ingest import progress, repair, repository, service
from bifrost_core.ingest.schemas import (
    CreatedVersion,
    IngestPlan,
    IngestSummary,
    PlannedRepresentation,
    PlannedVersion,
    Problem,
    PublishRequest,
    SourceFile,
    StoredBlob,
    StoreResult,
    Target,
)
from bifrost_core.projects.models import Project
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.projects.service import ensure_active
from bifrost_core.scope import SYSTEM, Actor
from bifrost_core.storage import leases
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.durability import sync_filesystem
from bifrost_core.storage.errors import PutFailed, StorageFull, storage_error
from bifrost_core.storage.naming import NamingRules
from bifrost_core.storage.paths import (
    PublishTemplates,
    default_publish_root,
    materialise,
)
from bifrost_core.storage.scan import MOVIE_EXTENSIONS, ScanItem, scan

# One put_files call (one filesystem sync, on a local tier) per this many files or bytes:
# large enough that syncs stay a small share of the time and few chunks wait for their
# slowest file (the local store writes large files past the page cache, or starts their
# write-back as it copies, so the sync finds little left), small enough that a crash
# re-copies little. An object store needs no sync: its chunks are bounded by count only.
CHUNK_FILES = 1000
CHUNK_BYTES = 4 << 30
# Copy threads per batch. Local copies are bound by the CPU and the kernel: on the 2-core
# reference machine, 4 threads stored 10,000 small files in 1.2-1.5 s against 0.9-1.2 s
# for 1 or 2, spending 1.6 times the CPU fighting over the GIL, which registration needs
# meanwhile. Object stores wait on the network, so more uploads in flight pay off.
LOCAL_WORKERS = 2
OBJECT_WORKERS = 4

_stores: dict[tuple[str, str, str], BlobStore] = {}


def tier_root(settings: Settings, project: Project, tier: str) -> str:
    """The root URL of a project's tier: the project's own setting, else the studio default."""
    roots = {**settings.tier_roots, **(project.storage_tiers or {})}
    if tier not in roots:
        raise InvalidInput(f"project {project.code} has no storage tier {tier!r} (tiers: {', '.join(roots)})")
    return str(roots[tier])


def blob_store(settings: Settings, root: str, tier: str) -> BlobStore:
    """One store per root, options and process (an S3 client is worth reusing), opened
    with the storage options the settings give for its URL."""
    options = settings.storage_options_for(root)
    key = (root, tier, json.dumps(options, sort_keys=True, default=str))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = BlobStore(root, name=tier, storage_options=options)
    return store


def active_project(session: Session, code: str) -> Project:
    """The project by code, refusing one that is closed or archived."""
    return ensure_active(ProjectRepository(session).by_code(code), doing="ingest or publish")


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


def _workers(store: BlobStore) -> int:
    return LOCAL_WORKERS if store.is_local else OBJECT_WORKERS


def store_files(
    database: Database, store: BlobStore, *, tier: str, files: Sequence[SourceFile]
) -> StoreResult:
    """Make every file's content durable in the tier; a file whose content the tier already
    records (known from its fingerprint) is not read again once its blob is rehashed.

    Returns path -> blob, the per-file problems, the files and bytes copied, and the blobs
    found missing or damaged and stored again.
    """
    result = StoreResult()
    reuse, bad = repair.reusable(database, store, tier, files, workers=_workers(store))
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
                workers=_workers(store),
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
    problems: list[Problem],
    comment: str = "",
    meta: dict | None = None,
) -> tuple[list[CreatedVersion], int]:
    """One transaction per version; a version with any file problem is skipped whole.

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
    bad = {problem.path for problem in problems}
    with UnitOfWork(database) as uow:
        entities = service.entity_ids(uow.session, project_id)
        project = uow.session.get(Project, project_id)
        assert project is not None
        code, path_templates = project.code, (project.config or {}).get("path_templates")
    # Parsed at the first version, once per batch (a bad one is reported for each version).
    templates: PublishTemplates | None = None
    for planned in versions:
        failed = [file.path for file in planned.files if file.path in bad or file.path not in blobs]
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
            problems.append(
                Problem(
                    path=planned.representations[0].source,
                    message=f"version {planned.target.label} not registered: {len(failed)} file(s) failed",
                )
            )
            continue
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
            else:
                problems.append(
                    Problem(path=planned.representations[0].source, message=f"conflicting write: {exc.orig}")
                )
            continue
        except BifrostError as exc:
            problems.append(Problem(path=planned.representations[0].source, message=str(exc)))
            continue
        if done is None:
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


def is_transient(exc: BaseException) -> bool:
    """Whether a failed batch may succeed if simply run again: the store or the database
    failed or could not be reached. Not a full disk, not bad input, not a bug. Running a
    batch again is safe: what it stored is found, what it registered is known."""
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
    actor: Actor = SYSTEM,
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
    with leases.leased(database, {blob.hash for blob in stored.blobs.values()}):
        crash_point("leased")
        repair.restore_missing(store, stored, workers=_workers(store))
        repair.relink_published(database, store, stored.repaired)
        created, known = register(
            database,
            store,
            actor=actor,
            project_id=project_id,
            tier=tier,
            source=source,
            versions=versions,
            blobs=stored.blobs,
            problems=stored.problems,
            comment=comment,
            meta=meta,
        )
    return IngestSummary(
        project=project,
        source=source,
        tier=tier,
        known=known,
        created=created,
        problems=stored.problems,
        files=len(files),
        bytes=sum(file.size for file in files),
        files_copied=stored.files_copied,
        bytes_copied=stored.bytes_copied,
        blobs_repaired=len(stored.repaired),
    )


def source_file(path: Path, *, name: str | None = None, frame: int | None = None) -> SourceFile:
    """Stat one source file (following no further than the scanner already did)."""
    st = path.stat()
    return SourceFile(
        path=str(path), name=name or path.name, size=st.st_size, mtime_ns=st.st_mtime_ns, frame=frame
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
        files=sum(len(version.files) for version in plan.versions),
        bytes=sum(version.size for version in plan.versions),
        plan=plan if dry_run else None,
    )


def merge(summary: IngestSummary, batch: IngestSummary) -> None:
    """Add one batch's outcome to the run's summary."""
    summary.known += batch.known
    summary.created.extend(batch.created)
    summary.problems.extend(batch.problems)
    summary.files_copied += batch.files_copied
    summary.bytes_copied += batch.bytes_copied
    summary.blobs_repaired += batch.blobs_repaired


def record_run(database: Database, *, summary: IngestSummary, kind: str, actor: Actor = SYSTEM) -> None:
    """The run's event (counts and created version ids), in its own transaction."""
    with UnitOfWork(database) as uow:
        project_id = ProjectRepository(uow.session, actor).by_code(summary.project).id
        service.record_run(
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
                "files_copied": summary.files_copied,
                "bytes_copied": summary.bytes_copied,
                "blobs_repaired": summary.blobs_repaired,
            },
        )
        uow.commit()


def kind_of(extension: str, framed: bool) -> str:
    if framed:
        return "frames"
    return "movie" if extension.lstrip(".").lower() in MOVIE_EXTENSIONS else "file"


def plan_publish(database: Database, settings: Settings, *, request: PublishRequest) -> IngestPlan:
    """One planned version from an explicit list of files (frames are grouped into sequences)."""
    import fileseq

    problems: list[Problem] = []
    readable: list[str] = []
    for name in request.files:
        path = Path(name)
        if not path.is_absolute():
            raise InvalidInput(f"{name}: give an absolute path")
        if not path.is_file():
            problems.append(
                Problem(path=name, message="not a regular file" if path.exists() else "does not exist")
            )
        else:
            readable.append(str(path))
    if problems:
        raise InvalidInput(
            f"{len(problems)} file(s) cannot be published: {problems[0].path}: {problems[0].message}"
        )
    target = Target(
        sequence=request.sequence,
        shot=request.shot,
        asset=request.asset,
        task=request.task,
        variant=request.variant,
    )
    taken: set[str] = set()
    representations: list[PlannedRepresentation] = []
    for group in fileseq.findSequencesInList(readable):
        frames = group.frameSet()
        framed = frames is not None and group.padding() != ""
        if framed:
            files = [
                source_file(Path(member), frame=frame) for frame, member in zip(frames, group, strict=True)
            ]
        else:
            files = [source_file(Path(str(group)))]
        # Frames are named by their stem (`plate`), single files by their whole name (`plate.mov`).
        stem = group.basename().rstrip("._-") if framed else Path(str(group)).name
        rep = PlannedRepresentation(
            name=service.representation_name(stem, taken),
            kind=kind_of(group.extension(), framed),
            source=str(group),
            stem=group.basename().rstrip("._-") if framed else Path(str(group)).stem,
            ext=group.extension().lstrip("."),
            files=files,
        )
        if framed:
            rep.frame_in, rep.frame_out, rep.frame_padding = group.start(), group.end(), group.zfill()
            rep.missing_frames = group.invertedFrameRange() or ""
            _check_range(request, rep)
        representations.append(rep)
    version = PlannedVersion(target=target, status="new", representations=representations)
    with UnitOfWork(database) as uow:
        project = active_project(uow.session, request.project)
        store = blob_store(settings, tier_root(settings, project, request.tier), request.tier)
        shots, assets = service.entity_ids(uow.session, project.id)
        problem = service.unknown_entity(target, shots, assets)
        if problem:
            raise InvalidInput(problem)
        service.apply_fingerprints(uow.session, project.id, version.files)
        service.classify(uow.session, project_id=project.id, versions=[version])
        repair.mark_missing(uow.session, store, request.tier, [version], workers=_workers(store))
    return IngestPlan(
        project=request.project,
        source=str(Path(readable[0]).parent),
        tier=request.tier,
        versions=[version],
    )


def _check_range(request: PublishRequest, rep: PlannedRepresentation) -> None:
    expected = (request.frame_in, request.frame_out)
    if expected != (None, None) and expected != (rep.frame_in, rep.frame_out):
        raise InvalidInput(
            f"{rep.source}: frames {rep.frame_in}-{rep.frame_out} found, "
            f"{request.frame_in}-{request.frame_out} expected"
        )


# Used when a project's configuration has no `naming_rules`: the layout `bifrost demo`
# delivers and most vendors can be asked for.
DEFAULT_NAMING_RULES = [
    "assets/{asset}/{task}/*",
    "assets/{asset}/{task}/{variant}/*",
    "{sequence}/{shot}/{task}/*",
    "{sequence}/{shot}/{task}/{variant}/*",
]
MAX_REPRESENTATIONS = 100


def naming_rules(project: Project) -> NamingRules:
    return NamingRules((project.config or {}).get("naming_rules") or DEFAULT_NAMING_RULES)


def _planned_representation(item: ScanItem, taken: set[str]) -> PlannedRepresentation:
    framed = item.kind == "frames"
    # Frames are named by their stem (`plate`), single files by their whole name (`plate.mov`).
    stem = item.name if framed else item.rel.rsplit("/", 1)[-1]
    return PlannedRepresentation(
        name=service.representation_name(stem, taken),
        kind=item.kind,
        source=item.rel,
        frame_in=item.first,
        frame_out=item.last,
        frame_padding=item.padding,
        missing_frames=item.missing or "",
        stem=item.name,
        ext=item.ext,
        files=[
            SourceFile(
                path=file.path,
                name=file.rel.rsplit("/", 1)[-1],
                size=file.size,
                mtime_ns=file.mtime_ns,
                frame=file.frame,
            )
            for file in item.files
        ],
    )


def plan_ingest(
    database: Database, settings: Settings, *, project: str, source: str, tier: str
) -> IngestPlan:
    """Scan a delivery and plan one version per matched (shot or asset, task, variant).

    Each version is new, changed (its task and variant already has versions) or known
    (these exact files were ingested before: nothing to do). Unmatched paths and
    unreadable files are listed, never dropped.
    """
    if not os.path.isabs(source):
        raise InvalidInput(f"{source}: give the delivery as an absolute path")
    with UnitOfWork(database) as uow:
        found = active_project(uow.session, project)
        store = blob_store(settings, tier_root(settings, found, tier), tier)
        rules = naming_rules(found)
        project_id = found.id
    scanned = scan(source)
    problems = [Problem(path=problem.rel, message=problem.reason) for problem in scanned.problems]
    report = rules.match_items(scanned.items)
    unmatched = [Problem(path=item.rel, message="no naming rule matches") for item in report.unmatched]
    grouped: dict[Target, list[ScanItem]] = {}
    for item, match in report.matched:
        target = Target(
            sequence=match.sequence,
            shot=match.shot,
            asset=match.asset,
            task=match.task,
            variant=match.variant,
        )
        grouped.setdefault(target, []).append(item)

    versions: list[PlannedVersion] = []
    with UnitOfWork(database) as uow:
        shots, assets = service.entity_ids(uow.session, project_id)
        for target, items in grouped.items():
            reason = service.unknown_entity(target, shots, assets)
            if reason:
                unmatched.extend(Problem(path=item.rel, message=reason) for item in items)
            elif len(items) > MAX_REPRESENTATIONS:
                problems.append(
                    Problem(
                        path=items[0].directory,
                        message=f"{len(items)} representations for {target.label}; "
                        f"a version holds at most {MAX_REPRESENTATIONS}: split the delivery",
                    )
                )
            else:
                taken: set[str] = set()
                representations = [_planned_representation(item, taken) for item in items]
                versions.append(PlannedVersion(target=target, status="new", representations=representations))
        service.apply_fingerprints(uow.session, project_id, [file for v in versions for file in v.files])
        service.classify(uow.session, project_id=project_id, versions=versions)
        repair.mark_missing(uow.session, store, tier, versions, workers=_workers(store))
    return IngestPlan(
        project=project,
        source=scanned.root,
        tier=tier,
        versions=versions,
        unmatched=unmatched,
        problems=problems,
    )
