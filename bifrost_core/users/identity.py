"""Who a command or a flow run acts as: always a named, active Bifrost user.

The CLI acts as the user behind BIFROST_TOKEN, else as the user named by BIFROST_USER or,
by default, the operating-system login name. A flow run is given a username (its `actor`
parameter) and refuses to start unless that user may run the flow in the project.
Whatever they write then carries that user: versions' author, events' actor, ...
"""

from __future__ import annotations

import getpass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.config import Settings
from bifrost_core.errors import PermissionDenied, Unauthenticated
from bifrost_core.events.service import record_created
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import Actor
from bifrost_core.users.models import User
from bifrost_core.users.permissions import ACTIONS, allowed
from bifrost_core.users.repository import UserRepository
from bifrost_core.users.schemas import UserCreate
from bifrost_core.users.service import actor_for_user, authenticate, create_user


def login_name(settings: Settings) -> str:
    """BIFROST_USER, else the operating-system login name."""
    if settings.user:
        return settings.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no LOGNAME/USER and no entry in the password database
        raise Unauthenticated("cannot tell who you are: set BIFROST_USER or BIFROST_TOKEN") from None


def operator(session: Session, settings: Settings, *, may_create: bool) -> Actor:
    """The user the CLI acts as; with `may_create` (the operator owns the database, as on the
    embedded default) a missing user by the login name is created as an admin."""
    if settings.token:
        try:
            return authenticate(session, settings.token)[0]
        except Unauthenticated:
            raise Unauthenticated("BIFROST_TOKEN: invalid or expired token") from None
    username = login_name(settings)
    user = session.scalar(select(User).where(User.username == username))
    if user is None and may_create:
        return _create_operator(session, username)
    source = "BIFROST_USER" if settings.user else "your operating-system login"
    if user is None:
        raise Unauthenticated(
            f"no Bifrost user {username!r} ({source}): set BIFROST_TOKEN to one of your API tokens, "
            f"or have an admin create the user {username!r} (POST /users)"
        )
    if not user.is_active:
        raise Unauthenticated(f"Bifrost user {username!r} ({source}) is deactivated")
    return actor_for_user(session, user)


def _create_operator(session: Session, username: str) -> Actor:
    """The operator's own admin account. Nobody else is there to create it, so its creation
    is recorded as done by the operator."""
    try:
        data = UserCreate(username=username, is_admin=True)
    except ValidationError:
        raise Unauthenticated(
            f"the operating-system login {username!r} is not a valid Bifrost username: set BIFROST_USER"
        ) from None
    user = UserRepository(session).add(User(**data.model_dump()))
    actor = actor_for_user(session, user)
    record_created(
        session, actor=actor, entity_type="user", entity=user, project_id=None, payload={"username": username}
    )
    return actor


def flow_actor(session: Session, *, username: str, project: str, action: str) -> tuple[Actor, int]:
    """The actor of a flow run, an active user whom the project's roles allow `action`, and
    the project's id."""
    actor = _active(session, username)
    # A project the actor cannot see is not found, as everywhere else.
    project_id = ProjectRepository(session, actor).by_code(project).id
    if not allowed(actor, action, project_id):
        role = actor.role_in(project_id) or "no role"
        raise PermissionDenied(
            f"actor {username!r} ({role} in {project}) may not {ACTIONS[action]}", action=action
        )
    return actor, project_id


def studio_flow_actor(session: Session, *, username: str, flow: str) -> Actor:
    """The actor of a studio-wide flow run (upkeep across every project): an active admin.
    No project role can grant it: it reads and removes what every project stores."""
    actor = _active(session, username)
    if not actor.is_admin:
        raise PermissionDenied(f"actor {username!r} may not run {flow}: only an admin may")
    return actor


def _active(session: Session, username: str) -> Actor:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise Unauthenticated(f"actor {username!r} is not an active Bifrost user")
    return actor_for_user(session, user)


def ensure_service_user(session: Session, *, actor: Actor, username: str) -> str:
    """The account scheduled runs act as: an admin without a token (nobody logs in as it),
    created by `actor` (an admin) if missing. One that exists is left as it is (an admin may
    have deactivated it to stop the scheduled runs). Returns what was found or done."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        create_user(
            session, actor=actor, data=UserCreate(username=username, name="Scheduled runs", is_admin=True)
        )
        return "created"
    if not user.is_active:
        return "deactivated: scheduled runs fail"
    return "exists" if user.is_admin else "not an admin: scheduled upkeep runs fail"
