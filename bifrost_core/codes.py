"""Production entities by their codes: the one place codes become rows.

Two ways, for two kinds of caller:

- one row at a time, by its exact code, within what the actor may see (`project_by_code`,
  `shot_by_code`, `task_by_ref`, ...): what the CLI names on its command line and ingest
  names by project code. A code that names nothing is NotFound ("project 'XYZ' not found").
- a whole project at once, as deliveries name them (`Entities`): vendors rarely keep a
  studio's case, so `sq010/sh010` is the shot SQ010/SH010. Codes in a delivery's paths
  (sequence, shot, asset) and task names match whatever their case, and a version is
  registered against the codes the database holds, so published paths use them. Two
  entities whose codes differ only by case make a match ambiguous: that is a problem
  naming both, never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset
from bifrost_core.assets.repository import AssetRepository
from bifrost_core.errors import NotFound
from bifrost_core.ingest.schemas import Target
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.projects.repository import ProjectRepository, SequenceRepository, ShotRepository
from bifrost_core.scope import Actor
from bifrost_core.tasks.models import Task, TaskType
from bifrost_core.tasks.repository import TaskRepository


def project_by_code(session: Session, actor: Actor, code: str) -> Project:
    return ProjectRepository(session, actor).by_code(code)


def sequence_by_code(session: Session, actor: Actor, project_id: int, code: str) -> Sequence:
    return SequenceRepository(session, actor).by_code(project_id, code)


def shot_by_code(session: Session, actor: Actor, project_id: int, sequence_code: str, code: str) -> Shot:
    sequence = sequence_by_code(session, actor, project_id, sequence_code)
    return ShotRepository(session, actor).by_code(sequence.id, code)


def asset_by_code(session: Session, actor: Actor, project_id: int, code: str) -> Asset:
    return AssetRepository(session, actor).by_code(project_id, code)


def entity_by_ref(session: Session, actor: Actor, project_id: int, ref: str) -> tuple[str, Shot | Asset]:
    """`SEQ/SHOT` names a shot, anything else an asset (asset codes cannot contain '/')."""
    if "/" in ref:
        sequence_code, _, shot_code = ref.partition("/")
        return "shot", shot_by_code(session, actor, project_id, sequence_code, shot_code)
    return "asset", asset_by_code(session, actor, project_id, ref)


def task_by_ref(session: Session, actor: Actor, project_id: int, entity_ref: str, name: str) -> Task:
    """The task `name` of the shot or asset `entity_ref` names (see `entity_by_ref`)."""
    kind, entity = entity_by_ref(session, actor, project_id, entity_ref)
    column = Task.shot_id if kind == "shot" else Task.asset_id
    task = TaskRepository(session, actor).first(column == entity.id, Task.name == name)
    if task is None:
        raise NotFound(f"task {name!r} not found on {kind} {entity_ref!r}")
    return task


def shot_refs(session: Session, shot_ids: Iterable[int]) -> dict[int, str]:
    """`SEQ/SHOT` for each shot id, in one query, for list output."""
    ids = set(shot_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Shot.id, Sequence.code, Shot.code)
        .join(Sequence, Sequence.id == Shot.sequence_id)
        .where(Shot.id.in_(ids))
    )
    return {shot_id: f"{sequence_code}/{shot_code}" for shot_id, sequence_code, shot_code in rows}


def asset_codes(session: Session, asset_ids: Iterable[int]) -> dict[int, str]:
    """The code of each asset id, in one query, for list output."""
    ids = set(asset_ids)
    if not ids:
        return {}
    return dict(session.execute(select(Asset.id, Asset.code).where(Asset.id.in_(ids))).all())


def fold(code: str) -> str:
    return code.casefold()


class Unresolved(NamedTuple):
    """Why a target is not one of the project's: `ambiguous` when several entities (or
    tasks) match it, else it matches none."""

    reason: str
    ambiguous: bool = False


@dataclass
class Entities:
    """One project's shots, assets, tasks and task types, indexed by case-folded code."""

    # (sequence, shot) folded -> [(sequence, shot, shot id)]
    shots: dict[tuple[str, str], list[tuple[str, str, int]]] = field(default_factory=dict)
    # asset code folded -> [(asset code, asset id)]
    assets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # ("shot" or "asset", entity id) -> task name folded -> [task names]
    tasks: dict[tuple[str, int], dict[str, list[str]]] = field(default_factory=dict)
    # task type code folded -> [task type codes]
    task_types: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, project_id: int) -> Entities:
        shots: dict[tuple[str, str], list[tuple[str, str, int]]] = defaultdict(list)
        for sequence, shot, shot_id in session.execute(
            select(Sequence.code, Shot.code, Shot.id)
            .join(Sequence, Sequence.id == Shot.sequence_id)
            .where(Shot.project_id == project_id)
            .order_by(Shot.id)
        ):
            shots[(fold(sequence), fold(shot))].append((sequence, shot, shot_id))
        assets: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for code, asset_id in session.execute(
            select(Asset.code, Asset.id).where(Asset.project_id == project_id).order_by(Asset.id)
        ):
            assets[fold(code)].append((code, asset_id))
        tasks: dict[tuple[str, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for name, shot_id, asset_id in session.execute(
            select(Task.name, Task.shot_id, Task.asset_id)
            .where(Task.project_id == project_id)
            .order_by(Task.id)
        ):
            entity = ("shot", shot_id) if shot_id is not None else ("asset", asset_id)
            tasks[entity][fold(name)].append(name)
        task_types: dict[str, list[str]] = defaultdict(list)
        for code in session.scalars(
            select(TaskType.code).where(TaskType.project_id == project_id).order_by(TaskType.id)
        ):
            task_types[fold(code)].append(code)
        return cls(dict(shots), dict(assets), {k: dict(v) for k, v in tasks.items()}, dict(task_types))

    def resolve(self, target: Target) -> Target | Unresolved:
        """`target` with the project's own codes (sequence, shot or asset, and the task when
        the entity has it or the project has its type), or why it cannot be: the entity is
        not in the project, or several match."""
        if target.shot is not None:
            label = f"shot {target.sequence}/{target.shot}"
            shots = self.shots.get((fold(target.sequence or ""), fold(target.shot)), [])
            if len(shots) != 1:
                return _unresolved(label, [f"{sequence}/{shot}" for sequence, shot, _ in shots])
            sequence, shot, entity_id = shots[0]
            entity: tuple[str, int] = ("shot", entity_id)
            canonical = {"sequence": sequence, "shot": shot}
        else:
            label = f"asset {target.asset}"
            assets = self.assets.get(fold(target.asset or ""), [])
            if len(assets) != 1:
                return _unresolved(label, [code for code, _ in assets])
            code, entity_id = assets[0]
            entity = ("asset", entity_id)
            canonical = {"asset": code}
        key = fold(target.task)
        names = self.tasks.get(entity, {}).get(key) or self.task_types.get(key) or [target.task]
        if len(names) > 1:
            return _unresolved(f"task {target.task} of {label}", names)
        return target.model_copy(update={**canonical, "task": names[0]})

    def ids(self, target: Target) -> tuple[int | None, int | None]:
        """(shot id, asset id) of a resolved target."""
        if target.shot is not None:
            return self.shots[(fold(target.sequence or ""), fold(target.shot))][0][2], None
        return None, self.assets[fold(target.asset or "")][0][1]


def _unresolved(label: str, matches: list[str]) -> Unresolved:
    if not matches:
        return Unresolved(f"{label} is not in the project")
    return Unresolved(f"{label} matches {' and '.join(matches)}, which differ only by case: rename one", True)
