"""Users, project memberships, API tokens and turning a token back into an Actor."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.errors import Unauthenticated
from bifrost_core.events.models import Event
from bifrost_core.events.service import record, record_created
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.schemas import changes
from bifrost_core.scope import Actor
from bifrost_core.users import permissions
from bifrost_core.users.models import ApiToken, ProjectMembership, User
from bifrost_core.users.repository import MembershipRepository, TokenRepository, UserRepository
from bifrost_core.users.schemas import (
    MembershipCreate,
    TokenCreate,
    TokenIssued,
    TokenRead,
    UserCreate,
    UserUpdate,
)
from bifrost_core.writes import add_new, apply_update, put, remove

TOKEN_PREFIX = "bft_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(session: Session, *, actor: Actor, data: UserCreate) -> User:
    permissions.require_admin(actor, "create users")
    return add_new(UserRepository(session, actor), User(**data.model_dump()), unique=("username",))


def update_user(session: Session, *, actor: Actor, user_id: int, data: UserUpdate) -> User:
    permissions.require_admin(actor, "change users")
    repository = UserRepository(session, actor)
    return apply_update(repository, repository.get(user_id), changes(data))


def set_membership(
    session: Session, *, actor: Actor, project_id: int, data: MembershipCreate
) -> ProjectMembership:
    """Add a user to a project with a role, or change the role they have."""
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "members.write", project_id)
    UserRepository(session, actor).get(data.user_id)
    return put(
        MembershipRepository(session, actor),
        {"project_id": project_id, "user_id": data.user_id},
        {"role": data.role},
    )


def remove_membership(session: Session, *, actor: Actor, membership_id: int) -> None:
    repository = MembershipRepository(session, actor)
    membership = repository.get(membership_id)
    permissions.require(actor, "members.write", membership.project_id)
    remove(repository, membership, {"user_id": membership.user_id})


def create_token(
    session: Session, *, actor: Actor, user_id: int, data: TokenCreate, parent_id: int | None = None
) -> TokenIssued:
    """A new token for `user_id`. `parent_id` is the token the request was made with (the
    API's token routes): the new token expires no later than it, and dies with it."""
    if actor.user_id != user_id:
        permissions.require_admin(actor, "create tokens for other users")
    user = UserRepository(session, actor).get(user_id)
    now = utcnow()
    expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    if parent_id is not None:
        parent = session.get(ApiToken, parent_id)
        if parent is None or parent.revoked_at is not None:
            raise Unauthenticated("invalid or expired token")
        parent_expiry = _aware(parent.expires_at)
        if parent_expiry is not None and (expires_at is None or parent_expiry < expires_at):
            expires_at = parent_expiry
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=data.name,
        token_hash=hash_token(secret),
        prefix=secret[:12],
        expires_at=expires_at,
        parent_id=parent_id,
    )
    TokenRepository(session, actor).add(token)
    record_created(
        session,
        actor=actor,
        entity_type="token",
        entity=token,
        project_id=None,
        payload={"user_id": user.id, "prefix": token.prefix, "parent_id": parent_id},
    )
    return TokenIssued(**TokenRead.model_validate(token).model_dump(), token=secret)


def issue_token_for(
    session: Session, *, actor: Actor, user_id: int, data: TokenCreate, parent_id: int | None = None
) -> TokenIssued:
    """The admins' way to issue a token for any user (a render node's service account, say):
    refused to everyone else, even for their own account."""
    permissions.require_admin(actor, "create tokens for other users")
    return create_token(session, actor=actor, user_id=user_id, data=data, parent_id=parent_id)


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> ApiToken:
    """Revoke a token and every token made with it, at any depth (whoever they belong to:
    a token made with a stolen one must not outlive its revocation)."""
    token = TokenRepository(session, actor).get(token_id)
    tree = select(ApiToken.id).where(ApiToken.id == token.id).cte("token_tree", recursive=True)
    tree = tree.union(select(ApiToken.id).join(tree, ApiToken.parent_id == tree.c.id))
    live = session.scalars(
        select(ApiToken).where(ApiToken.id.in_(select(tree.c.id)), ApiToken.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for revoked in sorted(live, key=lambda row: row.id):
        revoked.revoked_at = now
        record(
            session,
            actor=actor,
            kind="token.revoked",
            entity_type="token",
            entity_id=revoked.id,
            project_id=None,
            payload={"user_id": revoked.user_id, "prefix": revoked.prefix},
        )
    session.flush()
    return token


# Changes after which a token may no longer authenticate, or as someone else.
AUTH_CHANGES = ("user.updated", "membership.set", "membership.removed", "token.revoked")


def auth_changes_seen(session: Session) -> str:
    """Moves with every committed change that can alter a token's authentication: the count
    of such events as well as the last id, since a transaction that commits late can hold
    an id below one already seen."""
    count, last = session.execute(
        select(func.count(Event.id), func.max(Event.id)).where(Event.kind.in_(AUTH_CHANGES))
    ).one()
    return f"{count}.{last or 0}"


def actor_for_user(session: Session, user: User) -> Actor:
    roles = dict(
        session.execute(
            select(ProjectMembership.project_id, ProjectMembership.role).where(
                ProjectMembership.user_id == user.id
            )
        ).all()
    )
    return Actor(user_id=user.id, username=user.username, is_admin=user.is_admin, roles=roles)


def authenticate(session: Session, secret: str) -> tuple[Actor, ApiToken]:
    """The actor behind a bearer token; one message for every failure so nothing leaks."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(secret))
    ).first()
    now = utcnow()
    if row is None:
        raise Unauthenticated("invalid or expired token")
    token, user = row
    expires_at = _aware(token.expires_at)
    if token.revoked_at is not None or not user.is_active or (expires_at and expires_at <= now):
        raise Unauthenticated("invalid or expired token")
    token.last_used_at = now
    return actor_for_user(session, user), token


def _aware(moment: datetime | None) -> datetime | None:
    # A row read back from SQLite outside the UtcDateTime type may be naive; it is UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
