"""Builders for the domain tests: a small production made through the services themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate
from bifrost_core.events import bus
from bifrost_core.events.schemas import EventRead
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM, Actor
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.users import service as users
from bifrost_core.users.schemas import MembershipCreate, UserCreate


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Builder:
    """Creates rows through the services (as SYSTEM unless told), flushing, never committing."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def project(self, code: str = "P1", **fields: object):
        return projects.create_project(
            self.session, actor=SYSTEM, data=ProjectCreate(code=code, name=f"Project {code}", **fields)
        )

    def sequence(self, project, code: str = "sq010", **fields: object):
        return projects.create_sequence(
            self.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code=code, **fields)
        )

    def shot(self, sequence, code: str = "sh010", **fields: object):
        return projects.create_shot(
            self.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code=code, **fields)
        )

    def asset(self, project, code: str = "chair", asset_type: str = "prop"):
        return assets.create_asset(
            self.session,
            actor=SYSTEM,
            project_id=project.id,
            data=AssetCreate(code=code, asset_type=asset_type),
        )

    def task(self, *, shot=None, asset=None, task_type: str = "comp", **fields: object):
        data = TaskCreate(
            task_type=task_type,
            shot_id=shot.id if shot is not None else None,
            asset_id=asset.id if asset is not None else None,
            **fields,
        )
        return tasks.create_task(self.session, actor=SYSTEM, data=data)

    def user(self, username: str, *, is_admin: bool = False):
        return users.create_user(
            self.session, actor=SYSTEM, data=UserCreate(username=username, is_admin=is_admin)
        )

    def member(self, project, user, role: str = "artist"):
        return users.set_membership(
            self.session,
            actor=SYSTEM,
            project_id=project.id,
            data=MembershipCreate(user_id=user.id, role=role),
        )

    def actor(self, user) -> Actor:
        return users.actor_for_user(self.session, user)

    def blob(self, content: bytes, tier: str = "hot") -> str:
        """Record stored content as ingest does (the bytes themselves are not needed here)."""
        hash_ = digest(content)
        record_blobs(self.session, [(hash_, len(content), f"file:///{tier}/{hash_}")], tier)
        return hash_

    def shot_task(self, project_code: str = "P1"):
        """Project -> sequence -> shot -> comp task: the usual place to publish to."""
        project = self.project(project_code)
        shot = self.shot(self.sequence(project))
        return project, shot, self.task(shot=shot)


@pytest.fixture
def build(session: Session) -> Builder:
    return Builder(session)


@pytest.fixture
def delivered() -> Iterator[list[EventRead]]:
    """Events handed to bus subscribers (the subscriber is removed after the test)."""
    received: list[EventRead] = []
    handler = bus.subscribe(received.append)
    yield received
    bus.unsubscribe(handler)
