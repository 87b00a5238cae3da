"""Planning an ingest or a publish: what each delivered file is for, and what to register.

A plan holds one version per (shot or asset, task, variant), each new, changed or known,
plus what cannot be taken: unmatched paths, problems and held-back versions. A problem
(an unreadable file, a FIFO, a link out of the delivery, a broken link, a loop, an
undecodable name) is matched by the naming rules like any file, and holds back the whole
version it would have belonged to: a version is never registered without some of its files.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.orm import Session

from bifrost_core.codes import Entities, project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput
from bifrost_core.ingest import repair, service
from bifrost_core.ingest.roots import copy_workers, tier_root, usable_store
from bifrost_core.ingest.schemas import (
    HeldBack,
    IngestPlan,
    PlannedRepresentation,
    PlannedVersion,
    Problem,
    PublishRequest,
    SourceFile,
    Target,
)
from bifrost_core.projects.models import Project
from bifrost_core.projects.service import ensure_active
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.naming import NamingMatch, NamingRules
from bifrost_core.storage.scan import MOVIE_EXTENSIONS, ScanItem, scan

# Used when a project's configuration has no `naming_rules`: the layout `bifrost demo`
# delivers and most vendors can be asked for.
DEFAULT_NAMING_RULES = [
    "assets/{asset}/{task}/*",
    "assets/{asset}/{task}/{variant}/*",
    "{sequence}/{shot}/{task}/*",
    "{sequence}/{shot}/{task}/{variant}/*",
]
MAX_REPRESENTATIONS = 100


def active_project(session: Session, code: str) -> Project:
    """The project by code, refusing one that is closed or archived."""
    return ensure_active(project_by_code(session, SYSTEM, code), doing="ingest or publish")


def check_destination(
    database: Database, settings: Settings, *, project: str, tier: str
) -> tuple[Project, BlobStore]:
    """What an ingest or a publish checks before anything else: the project takes them, it
    has the tier, and the tier's root exists and takes a write (ConfigError otherwise).
    Returns the project and the tier's store."""
    with UnitOfWork(database) as uow:
        found = active_project(uow.session, project)
        root = tier_root(settings, found, tier)
        uow.session.expunge(found)
    return found, usable_store(settings, root, tier)


def naming_rules(project: Project) -> NamingRules:
    return NamingRules((project.config or {}).get("naming_rules") or DEFAULT_NAMING_RULES)


def source_file(path: Path, *, name: str | None = None, frame: int | None = None) -> SourceFile:
    """Stat one source file (following no further than the scanner already did)."""
    st = path.stat()
    return SourceFile(
        path=str(path), name=name or path.name, size=st.st_size, mtime_ns=st.st_mtime_ns, frame=frame
    )


def kind_of(extension: str, framed: bool) -> str:
    if framed:
        return "frames"
    return "movie" if extension.lstrip(".").lower() in MOVIE_EXTENSIONS else "file"


def plan_publish(database: Database, settings: Settings, *, request: PublishRequest) -> IngestPlan:
    """One planned version from an explicit list of files (frames are grouped into sequences)."""
    import fileseq

    project, store = check_destination(database, settings, project=request.project, tier=request.tier)
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
    requested = Target(
        sequence=request.sequence,
        shot=request.shot,
        asset=request.asset,
        task=request.task,
        variant=request.variant,
    )
    with UnitOfWork(database) as uow:
        target = Entities.load(uow.session, project.id).resolve(requested)
        if not isinstance(target, Target):
            raise InvalidInput(target.reason)
        version = PlannedVersion(target=target, status="new", representations=representations)
        service.apply_fingerprints(uow.session, project.id, version.files)
        service.classify(uow.session, project_id=project.id, versions=[version])
        repair.mark_missing(uow.session, store, request.tier, [version], workers=copy_workers(store))
    return IngestPlan(
        project=request.project,
        source=str(Path(readable[0]).parent),
        tier=request.tier,
        versions=[version],
        files_seen=len(version.files),
    )


def _check_range(request: PublishRequest, rep: PlannedRepresentation) -> None:
    expected = (request.frame_in, request.frame_out)
    if expected != (None, None) and expected != (rep.frame_in, rep.frame_out):
        raise InvalidInput(
            f"{rep.source}: frames {rep.frame_in}-{rep.frame_out} found, "
            f"{request.frame_in}-{request.frame_out} expected"
        )


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


def _target(match: NamingMatch) -> Target:
    return Target(
        sequence=match.sequence, shot=match.shot, asset=match.asset, task=match.task, variant=match.variant
    )


def plan_ingest(
    database: Database, settings: Settings, *, project: str, source: str, tier: str
) -> IngestPlan:
    """Scan a delivery and plan one version per matched (shot or asset, task, variant).

    Each version is new, changed (its task and variant already has versions) or known
    (these exact files were ingested before: nothing to do). Codes match whatever their
    case, and targets carry the project's own. Unmatched paths and problems are listed,
    never dropped; a problem whose path matches a rule holds back the version it belongs to.
    """
    if not os.path.isabs(source):
        raise InvalidInput(f"{source}: give the delivery as an absolute path")
    found, store = check_destination(database, settings, project=project, tier=tier)
    rules = naming_rules(found)
    scanned = scan(source)
    problems = [Problem(path=problem.rel, message=problem.reason) for problem in scanned.problems]
    report = rules.match_items(scanned.items)
    unmatched = [Problem(path=item.rel, message="no naming rule matches") for item in report.unmatched]

    with UnitOfWork(database) as uow:
        entities = Entities.load(uow.session, found.id)
        grouped: dict[Target, list[ScanItem]] = {}
        for item, match in report.matched:
            target = entities.resolve(_target(match))
            if isinstance(target, Target):
                grouped.setdefault(target, []).append(item)
            else:  # not the project's: unmatched; ambiguous: a problem, never a guess
                refused = Problem(path=item.rel, message=target.reason)
                (problems if target.ambiguous else unmatched).append(refused)
        blocked = _blocked(problems, rules, entities)
        versions: list[PlannedVersion] = []
        held_back = [HeldBack(target=target.label, problems=blockers) for target, blockers in blocked.items()]
        for target, items in grouped.items():
            if target in blocked:
                continue
            if len(items) > MAX_REPRESENTATIONS:
                too_many = Problem(
                    path=items[0].directory,
                    message=f"{len(items)} representations for {target.label}; "
                    f"a version holds at most {MAX_REPRESENTATIONS}: split the delivery",
                )
                problems.append(too_many)
                held_back.append(HeldBack(target=target.label, problems=[too_many]))
                continue
            taken: set[str] = set()
            representations = [_planned_representation(item, taken) for item in items]
            versions.append(PlannedVersion(target=target, status="new", representations=representations))
        service.apply_fingerprints(uow.session, found.id, [file for v in versions for file in v.files])
        service.classify(uow.session, project_id=found.id, versions=versions)
        repair.mark_missing(uow.session, store, tier, versions, workers=copy_workers(store))
    return IngestPlan(
        project=project,
        source=scanned.root,
        tier=tier,
        versions=versions,
        unmatched=unmatched,
        problems=problems,
        held_back=held_back,
        files_seen=len(scanned.files) + len(scanned.problems),
    )


def _blocked(problems: list[Problem], rules: NamingRules, entities: Entities) -> dict[Target, list[Problem]]:
    """The version each problem would have belonged to, matched as its path would be; a
    problem that matches no rule, or no shot or asset of the project, blocks nothing."""
    blocked: dict[Target, list[Problem]] = {}
    for problem in problems:
        match = rules.match(problem.path)
        target = entities.resolve(_target(match)) if match is not None else None
        if isinstance(target, Target):
            blocked.setdefault(target, []).append(problem)
    return blocked


def nothing_matched(plan: IngestPlan) -> str | None:
    """Why an ingest did nothing at all (no version planned, known or held back), in one
    line with an example; None if something matched."""
    if plan.versions or plan.held_back:
        return None
    examples = [*plan.unmatched, *plan.problems][:1]
    example = f"; e.g. {examples[0].path}: {examples[0].message}" if examples else ""
    return (
        f"nothing in {plan.source} matched the naming rules of {plan.project} "
        f"({plan.files_seen} file{'' if plan.files_seen == 1 else 's'}{example})"
    )
