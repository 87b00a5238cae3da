"""Rules for projects, episodes, sequences and shots. Services flush, never commit."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from bifrost_core.db.guards import apply_changes, ensure_absent
from bifrost_core.errors import Conflict, InvalidInput, PermissionDenied
from bifrost_core.events.service import record, record_created
from bifrost_core.projects.models import Episode, Project, Sequence, Shot
from bifrost_core.projects.repository import (
    EpisodeRepository,
    ProjectRepository,
    SequenceRepository,
    ShotRepository,
)
from bifrost_core.projects.schemas import (
    EpisodeCreate,
    EpisodeUpdate,
    ProjectCreate,
    ProjectUpdate,
    SequenceCreate,
    SequenceUpdate,
    ShotCreate,
    ShotUpdate,
)
from bifrost_core.schemas import changes
from bifrost_core.scope import Actor
from bifrost_core.storage.roots import check_tier_roots
from bifrost_core.workflow import service as workflow


def ensure_active(project: Project, *, doing: str) -> Project:
    """`project`, unless it is closed or archived: those take no new work (Conflict)."""
    if project.status != "active":
        raise Conflict(f"project {project.code} is {project.status}: reopen it to {doing}")
    return project


def create_project(
    session: Session, *, actor: Actor, data: ProjectCreate, allowed_roots: Collection[str] = ()
) -> Project:
    """`allowed_roots` (normalised, see Settings.allowed_storage_roots) bound the project's
    storage tier roots; without them it can have none of its own."""
    if not actor.is_admin:
        raise PermissionDenied("only an admin can create projects")
    ensure_absent(session, Project.code == data.code, message=f"project {data.code!r} already exists")
    fields = data.model_dump()
    fields["storage_tiers"] = check_tier_roots(data.storage_tiers, allowed_roots)
    project = ProjectRepository(session, actor).add(Project(**fields))
    workflow.install_defaults(session, project_id=project.id)
    record_created(
        session,
        actor=actor,
        entity_type="project",
        entity=project,
        project_id=project.id,
        payload={"code": project.code},
    )
    return project


def update_project(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    data: ProjectUpdate,
    allowed_roots: Collection[str] = (),
) -> Project:
    """Changing the storage tiers takes an admin, and roots inside `allowed_roots`."""
    project = ProjectRepository(session, actor).get(project_id)
    update = changes(data)
    if update.get("storage_tiers") is not None and update["storage_tiers"] != project.storage_tiers:
        # Tier roots are where Bifrost writes and gc deletes: the studio's decision.
        if not actor.is_admin:
            raise PermissionDenied("only an admin can change a project's storage tiers")
        update["storage_tiers"] = check_tier_roots(update["storage_tiers"], allowed_roots)
    changed = apply_changes(project, update)
    session.flush()
    record(
        session,
        actor=actor,
        kind="project.updated",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        payload=changed,
    )
    return project


def create_episode(session: Session, *, actor: Actor, project_id: int, data: EpisodeCreate) -> Episode:
    ProjectRepository(session, actor).get(project_id)
    ensure_absent(
        session,
        Episode.project_id == project_id,
        Episode.code == data.code,
        message=f"episode {data.code!r} already exists",
    )
    episode = EpisodeRepository(session, actor).add(Episode(project_id=project_id, **data.model_dump()))
    record_created(
        session,
        actor=actor,
        entity_type="episode",
        entity=episode,
        project_id=project_id,
        payload={"code": episode.code},
    )
    return episode


def update_episode(session: Session, *, actor: Actor, episode_id: int, data: EpisodeUpdate) -> Episode:
    episode = EpisodeRepository(session, actor).get(episode_id)
    changed = apply_changes(episode, changes(data))
    session.flush()
    record(
        session,
        actor=actor,
        kind="episode.updated",
        entity_type="episode",
        entity_id=episode.id,
        project_id=episode.project_id,
        payload=changed,
    )
    return episode


def _check_episode(session: Session, actor: Actor, project_id: int, episode_id: int | None) -> None:
    if episode_id is not None and EpisodeRepository(session, actor).get(episode_id).project_id != project_id:
        raise InvalidInput(f"episode {episode_id} belongs to another project")


def create_sequence(session: Session, *, actor: Actor, project_id: int, data: SequenceCreate) -> Sequence:
    ProjectRepository(session, actor).get(project_id)
    _check_episode(session, actor, project_id, data.episode_id)
    ensure_absent(
        session,
        Sequence.project_id == project_id,
        Sequence.code == data.code,
        message=f"sequence {data.code!r} already exists",
    )
    sequence = SequenceRepository(session, actor).add(Sequence(project_id=project_id, **data.model_dump()))
    record_created(
        session,
        actor=actor,
        entity_type="sequence",
        entity=sequence,
        project_id=project_id,
        payload={"code": sequence.code},
    )
    return sequence


def update_sequence(session: Session, *, actor: Actor, sequence_id: int, data: SequenceUpdate) -> Sequence:
    sequence = SequenceRepository(session, actor).get(sequence_id)
    update = changes(data)
    if "episode_id" in update:
        _check_episode(session, actor, sequence.project_id, data.episode_id)
    changed = apply_changes(sequence, update)
    session.flush()
    record(
        session,
        actor=actor,
        kind="sequence.updated",
        entity_type="sequence",
        entity_id=sequence.id,
        project_id=sequence.project_id,
        payload=changed,
    )
    return sequence


def create_shot(session: Session, *, actor: Actor, sequence_id: int, data: ShotCreate) -> Shot:
    sequence = SequenceRepository(session, actor).get(sequence_id)
    ensure_absent(
        session,
        Shot.sequence_id == sequence_id,
        Shot.code == data.code,
        message=f"shot {data.code!r} already exists in sequence {sequence.code!r}",
    )
    shot = ShotRepository(session, actor).add(
        Shot(project_id=sequence.project_id, sequence_id=sequence_id, **data.model_dump())
    )
    record_created(
        session,
        actor=actor,
        entity_type="shot",
        entity=shot,
        project_id=shot.project_id,
        payload={"code": shot.code},
    )
    return shot


def update_shot(session: Session, *, actor: Actor, shot_id: int, data: ShotUpdate) -> Shot:
    shot = ShotRepository(session, actor).get(shot_id)
    changed = apply_changes(shot, changes(data))
    if shot.frame_in > shot.frame_out:
        raise InvalidInput(f"frame in ({shot.frame_in}) is after frame out ({shot.frame_out})")
    if shot.cut_in is not None and shot.cut_out is not None and shot.cut_in > shot.cut_out:
        raise InvalidInput(f"cut in ({shot.cut_in}) is after cut out ({shot.cut_out})")
    session.flush()
    record(
        session,
        actor=actor,
        kind="shot.updated",
        entity_type="shot",
        entity_id=shot.id,
        project_id=shot.project_id,
        payload=changed,
    )
    return shot
