"""Rules for projects, episodes, sequences and shots. Services check the caller's permission
before they write, flush, and never commit."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from bifrost_core.errors import Conflict, InvalidInput
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
from bifrost_core.users import permissions
from bifrost_core.workflow import service as workflow
from bifrost_core.writes import add_new, apply_update


def ensure_active(project: Project, *, doing: str) -> Project:
    """`project`, unless it is closed or archived: those take no new work (Conflict)."""
    if project.status != "active":
        raise Conflict(f"project {project.code} is {project.status}: reopen it to {doing}")
    return project


def create_project(
    session: Session,
    *,
    actor: Actor,
    data: ProjectCreate,
    allowed_roots: Collection[str] = (),
    replica_roots: Collection[str] = (),
) -> Project:
    """`allowed_roots` (normalised, see Settings.allowed_storage_roots) bound the project's
    storage tier roots; without them it can have none of its own. None may be (or nest
    with) one of the `replica_roots` (Settings.replica_roots)."""
    permissions.require_admin(actor, "create projects")
    fields = data.model_dump()
    fields["storage_tiers"] = check_tier_roots(data.storage_tiers, allowed_roots, replica_roots)
    project = add_new(ProjectRepository(session, actor), Project(**fields), unique=("code",))
    workflow.install_defaults(session, project_id=project.id)
    return project


def update_project(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    data: ProjectUpdate,
    allowed_roots: Collection[str] = (),
    replica_roots: Collection[str] = (),
) -> Project:
    """Changing the storage tiers takes an admin, and roots inside `allowed_roots`, away
    from the `replica_roots`."""
    repository = ProjectRepository(session, actor)
    project = repository.get(project_id)
    permissions.require(actor, "project.update", project.id)
    update = changes(data)
    if update.get("storage_tiers") is not None and update["storage_tiers"] != project.storage_tiers:
        # Tier roots are where Bifrost writes and gc deletes: the studio's decision.
        permissions.require_admin(actor, "change a project's storage tiers")
        update["storage_tiers"] = check_tier_roots(update["storage_tiers"], allowed_roots, replica_roots)
    return apply_update(repository, project, update)


def create_episode(session: Session, *, actor: Actor, project_id: int, data: EpisodeCreate) -> Episode:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "structure.write", project_id)
    return add_new(EpisodeRepository(session, actor), Episode(project_id=project_id, **data.model_dump()))


def update_episode(session: Session, *, actor: Actor, episode_id: int, data: EpisodeUpdate) -> Episode:
    repository = EpisodeRepository(session, actor)
    episode = repository.get(episode_id)
    permissions.require(actor, "structure.write", episode.project_id)
    return apply_update(repository, episode, changes(data))


def _check_episode(session: Session, actor: Actor, project_id: int, episode_id: int | None) -> None:
    if episode_id is not None and EpisodeRepository(session, actor).get(episode_id).project_id != project_id:
        raise InvalidInput(f"episode {episode_id} belongs to another project")


def create_sequence(session: Session, *, actor: Actor, project_id: int, data: SequenceCreate) -> Sequence:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "structure.write", project_id)
    _check_episode(session, actor, project_id, data.episode_id)
    return add_new(SequenceRepository(session, actor), Sequence(project_id=project_id, **data.model_dump()))


def update_sequence(session: Session, *, actor: Actor, sequence_id: int, data: SequenceUpdate) -> Sequence:
    repository = SequenceRepository(session, actor)
    sequence = repository.get(sequence_id)
    permissions.require(actor, "structure.write", sequence.project_id)
    update = changes(data)
    if "episode_id" in update:
        _check_episode(session, actor, sequence.project_id, data.episode_id)
    return apply_update(repository, sequence, update)


def create_shot(session: Session, *, actor: Actor, sequence_id: int, data: ShotCreate) -> Shot:
    sequence = SequenceRepository(session, actor).get(sequence_id)
    permissions.require(actor, "shots.write", sequence.project_id)
    return add_new(
        ShotRepository(session, actor),
        Shot(project_id=sequence.project_id, sequence_id=sequence_id, **data.model_dump()),
        unique=("sequence_id", "code"),
        message=f"shot {data.code!r} already exists in sequence {sequence.code!r}",
    )


def update_shot(session: Session, *, actor: Actor, shot_id: int, data: ShotUpdate) -> Shot:
    repository = ShotRepository(session, actor)
    shot = repository.get(shot_id)
    permissions.require(actor, "shots.write", shot.project_id)
    update = changes(data)
    frame_in, frame_out = update.get("frame_in", shot.frame_in), update.get("frame_out", shot.frame_out)
    cut_in, cut_out = update.get("cut_in", shot.cut_in), update.get("cut_out", shot.cut_out)
    # Checked on the values to be, before any is set: a refused update leaves the row as it was.
    if frame_in is not None and frame_out is not None and frame_in > frame_out:
        raise InvalidInput(f"frame in ({frame_in}) is after frame out ({frame_out})")
    if cut_in is not None and cut_out is not None and cut_in > cut_out:
        raise InvalidInput(f"cut in ({cut_in}) is after cut out ({cut_out})")
    return apply_update(repository, shot, update)
