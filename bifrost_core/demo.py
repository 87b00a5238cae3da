"""The demo production, seeded idempotently: project DEMO, its artists, sequences and
shots, assets, casting and tasks.

Each step is a function `step(demo) -> str` that does one part of the job and returns a
one-line report. Steps get or create (and find what is done), so seeding again leaves the
same production. Each step is its own unit of work and commits at its end: later steps
(`bifrost demo` runs flows after these) must see what the earlier ones committed, and a
run that stops half-way is completed by running it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bifrost_core.assets import service as asset_service
from bifrost_core.assets.models import Asset, Casting
from bifrost_core.assets.repository import AssetRepository, CastingRepository
from bifrost_core.assets.schemas import AssetCreate, CastingCreate
from bifrost_core.codes import asset_by_code, entity_by_ref, project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as project_service
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.projects.repository import ProjectRepository, SequenceRepository, ShotRepository
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import Actor
from bifrost_core.tasks import service as task_service
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as user_service
from bifrost_core.users.models import ProjectMembership, User
from bifrost_core.users.repository import MembershipRepository, UserRepository
from bifrost_core.users.schemas import MembershipCreate, UserCreate

PROJECT = "DEMO"
SEQUENCES = {"SQ010": "Arrival", "SQ020": "The chase"}
HANDLES = 8
# (sequence, shot, frame in, frame out)
SHOTS = [
    ("SQ010", "SH010", 1001, 1048),
    ("SQ010", "SH020", 1001, 1072),
    ("SQ010", "SH030", 1001, 1036),
    ("SQ010", "SH040", 1001, 1096),
    ("SQ010", "SH050", 1001, 1060),
    ("SQ020", "SH010", 1001, 1024),
    ("SQ020", "SH020", 1001, 1040),
    ("SQ020", "SH030", 1001, 1120),
    ("SQ020", "SH040", 1001, 1032),
    ("SQ020", "SH050", 1001, 1084),
]
# (code, asset type, name)
ASSETS = [
    ("hero", "character", "Hero"),
    ("villain", "character", "Villain"),
    ("sword", "prop", "Sword"),
    ("lantern", "prop", "Lantern"),
    ("forest", "environment", "Forest"),
]
# shot -> {asset: count}
CASTING = {
    "SQ010/SH010": {"forest": 1, "hero": 1},
    "SQ010/SH020": {"forest": 1, "hero": 1, "lantern": 1},
    "SQ010/SH030": {"hero": 1, "lantern": 2},
    "SQ010/SH040": {"forest": 1, "hero": 1},
    "SQ010/SH050": {"forest": 1, "hero": 1, "villain": 1},
    "SQ020/SH010": {"forest": 1, "villain": 1},
    "SQ020/SH020": {"forest": 1, "hero": 1, "villain": 1},
    "SQ020/SH030": {"hero": 1, "sword": 1, "villain": 1},
    "SQ020/SH040": {"sword": 2, "villain": 1},
    "SQ020/SH050": {"forest": 1, "hero": 1, "sword": 1},
}
# (username, name, role in the project)
USERS = [
    ("alice", "Alice Layout", "artist"),
    ("bob", "Bob Animator", "artist"),
    ("cleo", "Cleo Comp", "artist"),
]
# task -> assignee, on every shot
SHOT_TASKS = {"layout": "alice", "anim": "bob", "comp": "cleo"}
# asset type -> tasks on each asset of that type
ASSET_TASKS = {"character": ["model", "rig"], "prop": ["model"], "environment": ["model"]}


@dataclass
class Demo:
    """What the steps work with: the database, the settings, and who builds the production
    (the operator, recorded on every row and event)."""

    settings: Settings
    database: Database
    actor: Actor
    project: str = PROJECT

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work for a step: committed when the step's block ends without error."""
        with UnitOfWork(self.database) as uow:
            yield uow.session
            uow.commit()

    def project_id(self, session: Session) -> int:
        return project_by_code(session, self.actor, self.project).id


def _tally(created: int, total: int, what: str) -> str:
    return f"{total} {what} ({created} new)"


def make_project(demo: Demo) -> str:
    with demo.session() as session:
        if ProjectRepository(session, demo.actor).first(Project.code == demo.project) is not None:
            return f"project {demo.project} already there"
        data = ProjectCreate(
            code=demo.project, name="Bifrost demo", fps=24, resolution_width=1920, resolution_height=1080
        )
        project_service.create_project(session, actor=demo.actor, data=data)
    return f"created project {demo.project} (24 fps, 1920x1080)"


def make_users(demo: Demo) -> str:
    created = 0
    with demo.session() as session:
        project_id = demo.project_id(session)
        for username, name, role in USERS:
            user = UserRepository(session, demo.actor).first(User.username == username)
            if user is None:
                user = user_service.create_user(
                    session, actor=demo.actor, data=UserCreate(username=username, name=name)
                )
                created += 1
            member = MembershipRepository(session, demo.actor).first(
                ProjectMembership.project_id == project_id, ProjectMembership.user_id == user.id
            )
            if member is None:
                user_service.set_membership(
                    session,
                    actor=demo.actor,
                    project_id=project_id,
                    data=MembershipCreate(user_id=user.id, role=role),
                )
    return _tally(created, len(USERS), "artists")


def make_shots(demo: Demo) -> str:
    created = 0
    with demo.session() as session:
        project_id = demo.project_id(session)
        sequences = {}
        for code, name in SEQUENCES.items():
            sequence = SequenceRepository(session, demo.actor).first(
                Sequence.project_id == project_id, Sequence.code == code
            )
            if sequence is None:
                data = SequenceCreate(code=code, name=name)
                sequence = project_service.create_sequence(
                    session, actor=demo.actor, project_id=project_id, data=data
                )
            sequences[code] = sequence
        for sequence_code, code, frame_in, frame_out in SHOTS:
            sequence_id = sequences[sequence_code].id
            if ShotRepository(session, demo.actor).first(Shot.sequence_id == sequence_id, Shot.code == code):
                continue
            data = ShotCreate(
                code=code, frame_in=frame_in, frame_out=frame_out, handles_in=HANDLES, handles_out=HANDLES
            )
            project_service.create_shot(session, actor=demo.actor, sequence_id=sequence_id, data=data)
            created += 1
    return f"{len(SEQUENCES)} sequences, " + _tally(created, len(SHOTS), "shots")


def make_assets(demo: Demo) -> str:
    created = 0
    with demo.session() as session:
        project_id = demo.project_id(session)
        for code, asset_type, name in ASSETS:
            if AssetRepository(session, demo.actor).first(Asset.project_id == project_id, Asset.code == code):
                continue
            data = AssetCreate(code=code, asset_type=asset_type, name=name)
            asset_service.create_asset(session, actor=demo.actor, project_id=project_id, data=data)
            created += 1
    return _tally(created, len(ASSETS), "assets")


def cast_assets(demo: Demo) -> str:
    changed = total = 0
    with demo.session() as session:
        project_id = demo.project_id(session)
        for shot_ref, assets in CASTING.items():
            _, shot = entity_by_ref(session, demo.actor, project_id, shot_ref)
            for asset_code, count in assets.items():
                total += 1
                asset = asset_by_code(session, demo.actor, project_id, asset_code)
                existing = CastingRepository(session, demo.actor).first(
                    Casting.shot_id == shot.id, Casting.asset_id == asset.id
                )
                # Re-casting with the same count would only add an event: skip what is done.
                if existing is not None and existing.count == count:
                    continue
                data = CastingCreate(shot_id=shot.id, asset_id=asset.id, count=count)
                asset_service.cast(session, actor=demo.actor, data=data)
                changed += 1
    return _tally(changed, total, "castings")


def make_tasks(demo: Demo) -> str:
    # (entity reference, task, assignee's username)
    wanted: list[tuple[str, str, str | None]] = [
        (f"{sequence_code}/{shot_code}", task, username)
        for sequence_code, shot_code, _, _ in SHOTS
        for task, username in SHOT_TASKS.items()
    ]
    wanted += [(code, task, None) for code, asset_type, _ in ASSETS for task in ASSET_TASKS[asset_type]]
    created = 0
    with demo.session() as session:
        project_id = demo.project_id(session)
        users = UserRepository(session, demo.actor)
        for ref, task, username in wanted:
            kind, entity = entity_by_ref(session, demo.actor, project_id, ref)
            column = Task.shot_id if kind == "shot" else Task.asset_id
            if TaskRepository(session, demo.actor).first(column == entity.id, Task.name == task):
                continue
            assignees = [users.by_username(username).id] if username else []
            data = TaskCreate(task_type=task, assignee_ids=assignees, **{f"{kind}_id": entity.id})
            task_service.create_task(session, actor=demo.actor, data=data)
            created += 1
    return _tally(created, len(wanted), "tasks")


Step = Callable[[Demo], str]

# The production, in order; `bifrost demo` runs its own steps (the delivery's ingest) after these.
SEED_STEPS: list[tuple[str, Step]] = [
    ("project", make_project),
    ("artists", make_users),
    ("sequences and shots", make_shots),
    ("assets", make_assets),
    ("casting", cast_assets),
    ("tasks", make_tasks),
]
