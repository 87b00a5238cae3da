"""Archive policies: set (checked), read, and the versions they select; shots marked final."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bifrost_core.config import Settings
from bifrost_core.db.base import utcnow
from bifrost_core.errors import InvalidInput
from bifrost_core.events.service import record
from bifrost_core.ingest.roots import tier_root
from bifrost_core.lifecycle.models import ArchivedVersion, ArchivePolicy, ShotFinal
from bifrost_core.lifecycle.schemas import PolicyRead, PolicyRules
from bifrost_core.projects.models import Project, Shot
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import Actor
from bifrost_core.users import permissions
from bifrost_core.versions.models import Version

# Rule names, in the order a version is attributed to them (the first that selects it).
RULES = ("closed_project", "final_shot", "unapproved", "superseded")
CLOSED_STATUSES = ("closed", "archived")


def parse_rules(data: object) -> PolicyRules:
    """`data` (a mapping) as checked rules, or InvalidInput naming the first bad field."""
    try:
        return PolicyRules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "policy"
        raise InvalidInput(f"archive policy: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def set_policy(
    session: Session, settings: Settings, *, actor: Actor, project_id: int, rules: PolicyRules
) -> PolicyRead:
    """Replace a project's archive policy, once its tier is one the project has."""
    project = ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "project.update", project_id)
    tier_root(settings, project, rules.tier)  # InvalidInput naming the project's tiers
    policy = session.scalar(select(ArchivePolicy).where(ArchivePolicy.project_id == project_id))
    if policy is None:
        policy = ArchivePolicy(project_id=project_id)
        session.add(policy)
    policy.rules = rules.model_dump()
    policy.updated_by = actor.user_id
    policy.updated_at = utcnow()
    session.flush()
    record(
        session,
        actor=actor,
        kind="archive_policy.set",
        entity_type="project",
        entity_id=project_id,
        project_id=project_id,
        payload=policy.rules,
    )
    return PolicyRead(project=project.code, rules=rules, updated_at=policy.updated_at)


def get_policy(session: Session, *, actor: Actor, project_id: int) -> PolicyRead:
    """A project's policy (a policy selecting nothing when none was set)."""
    project = ProjectRepository(session, actor).get(project_id)
    policy = session.scalar(select(ArchivePolicy).where(ArchivePolicy.project_id == project_id))
    if policy is None:
        return PolicyRead(project=project.code, rules=PolicyRules())
    return PolicyRead(
        project=project.code, rules=PolicyRules.model_validate(policy.rules), updated_at=policy.updated_at
    )


def mark_final(session: Session, *, actor: Actor, shot: Shot, final: bool = True) -> None:
    """Mark a shot final (delivered) or not; the `final_shot_after_days` rule counts from the mark."""
    permissions.require(actor, "shots.write", shot.project_id)
    found = session.scalar(select(ShotFinal).where(ShotFinal.shot_id == shot.id))
    if final and found is None:
        session.add(ShotFinal(shot_id=shot.id, marked_by=actor.user_id))
    elif not final and found is not None:
        session.delete(found)
    else:
        return
    session.flush()
    record(
        session,
        actor=actor,
        kind="shot.marked_final" if final else "shot.unmarked_final",
        entity_type="shot",
        entity_id=shot.id,
        project_id=shot.project_id,
    )


@dataclass(frozen=True)
class Selection:
    """What a policy selects in a project: version id -> the rule that selects it; and how
    many versions the project has that are hot (not archived, or restored)."""

    chosen: dict[int, str]
    hot_versions: int


def select_versions(session: Session, project: Project, rules: PolicyRules) -> Selection:
    """The hot versions of `project` the rules select (none if they select nothing)."""
    now = utcnow()
    archived = select(ArchivedVersion.version_id).where(ArchivedVersion.restored_at.is_(None))
    held = select(ArchivedVersion.version_id).where(
        ArchivedVersion.restored_at > now - timedelta(days=rules.restored_hold_days)
    )
    hot = [Version.project_id == project.id, Version.id.not_in(archived)]
    hot_versions = session.scalar(select(func.count()).select_from(Version).where(*hot)) or 0
    candidates = [*hot, Version.id.not_in(held)]
    chosen: dict[int, str] = {}

    def take(rule: str, ids: object) -> None:
        for version_id in session.scalars(ids):  # type: ignore[call-overload]
            chosen.setdefault(version_id, rule)

    if rules.closed_project and project.status in CLOSED_STATUSES:
        take("closed_project", select(Version.id).where(*candidates))
    if rules.final_shot_after_days is not None:
        cutoff = now - timedelta(days=rules.final_shot_after_days)
        finals = select(ShotFinal.shot_id).where(ShotFinal.marked_at <= cutoff)
        take("final_shot", select(Version.id).where(*candidates, Version.shot_id.in_(finals)))
    if rules.unapproved_older_than_days is not None:
        cutoff = now - timedelta(days=rules.unapproved_older_than_days)
        take(
            "unapproved",
            select(Version.id).where(*candidates, Version.status != "approved", Version.created_at < cutoff),
        )
    if rules.keep_latest is not None:
        # Ranked among all the task's versions of the variant, archived ones too: "the latest
        # K" are the K highest numbers, wherever they are stored.
        ranked = (
            select(
                Version.id.label("id"),
                func.row_number()
                .over(partition_by=(Version.task_id, Version.variant), order_by=Version.number.desc())
                .label("rank"),
            )
            .where(Version.project_id == project.id)
            .subquery()
        )
        older = select(ranked.c.id).where(ranked.c.rank > rules.keep_latest)
        take("superseded", select(Version.id).where(*candidates, Version.id.in_(older)))
    return Selection(chosen=chosen, hot_versions=hot_versions)
