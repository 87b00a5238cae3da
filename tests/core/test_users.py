"""Users, memberships and API tokens (only a hash is stored) and authentication."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bifrost_core.db.base import utcnow
from bifrost_core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.models import ApiToken, ProjectMembership
from bifrost_core.users.repository import MembershipRepository, TokenRepository, UserRepository
from bifrost_core.users.schemas import MembershipCreate, TokenCreate, UserCreate, UserUpdate


def test_create_user_and_duplicates(session, build):
    user = build.user("ann")
    assert UserRepository(session).by_username("ann").id == user.id
    assert (user.is_active, user.is_admin) == (True, False)
    with pytest.raises(Conflict, match="user 'ann' already exists"):
        build.user("ann")
    with pytest.raises(NotFound):
        UserRepository(session).by_username("nobody")


def test_only_admins_manage_users(session, build):
    ann = build.user("ann")
    actor = build.actor(ann)
    with pytest.raises(PermissionDenied):
        users.create_user(session, actor=actor, data=UserCreate(username="bob"))
    with pytest.raises(PermissionDenied):
        users.update_user(session, actor=actor, user_id=ann.id, data=UserUpdate(name="Ann"))


def test_update_user_is_partial_and_refuses_null(session, build):
    user = users.create_user(session, actor=SYSTEM, data=UserCreate(username="ann", name="Ann", email="a@b"))
    users.update_user(session, actor=SYSTEM, user_id=user.id, data=UserUpdate(email="ann@studio"))
    assert (user.name, user.email, user.is_active) == ("Ann", "ann@studio", True)
    with pytest.raises(InvalidInput, match="is_active cannot be null"):
        users.update_user(session, actor=SYSTEM, user_id=user.id, data=UserUpdate(is_active=None))


def test_membership_is_set_changed_and_removed(session, build):
    project = build.project("P1")
    user = build.user("ann")
    first = build.member(project, user, "artist")
    changed = build.member(project, user, "supervisor")
    assert first.id == changed.id
    assert build.actor(user).roles == {project.id: "supervisor"}
    assert session.scalar(select(func.count(ProjectMembership.id))) == 1
    users.remove_membership(session, actor=SYSTEM, membership_id=first.id)
    assert build.actor(user).roles == {}
    with pytest.raises(NotFound):
        MembershipRepository(session).get(first.id)


def test_membership_needs_a_known_user_and_project(session, build):
    project = build.project("P1")
    with pytest.raises(NotFound, match="user"):
        users.set_membership(
            session, actor=SYSTEM, project_id=project.id, data=MembershipCreate(user_id=999, role="artist")
        )
    with pytest.raises(NotFound, match="project"):
        build.member(type("P", (), {"id": project.id + 99})(), build.user("ann"))


def test_token_secret_is_shown_once_and_only_its_hash_is_stored(database, session, build):
    user = build.user("ann")
    issued = users.create_token(session, actor=SYSTEM, user_id=user.id, data=TokenCreate(name="cli"))
    assert issued.token.startswith("bft_") and len(issued.token) > 40
    session.flush()
    row = session.get(ApiToken, issued.id)
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token.startswith(row.prefix) and len(row.prefix) < len(issued.token) // 2
    # No column of the stored row holds the secret.
    raw = session.execute(text("SELECT * FROM api_tokens WHERE id = :id"), {"id": issued.id}).one()
    assert all(issued.token not in str(value) for value in raw)


def test_authenticate_returns_the_actor_with_roles(session, build):
    project = build.project("P1")
    user = build.user("ann")
    build.member(project, user, "coordinator")
    issued = users.create_token(session, actor=SYSTEM, user_id=user.id, data=TokenCreate(expires_in_days=30))
    actor, token = users.authenticate(session, issued.token)
    assert (actor.user_id, actor.username, actor.is_admin) == (user.id, "ann", False)
    assert actor.roles == {project.id: "coordinator"}
    assert token.id == issued.id and token.last_used_at is not None


def _token(session, build, username="ann"):
    user = build.user(username)
    return user, users.create_token(session, actor=SYSTEM, user_id=user.id, data=TokenCreate())


def test_unknown_token_is_refused(session, build):
    _token(session, build)
    with pytest.raises(Unauthenticated, match="invalid or expired token"):
        users.authenticate(session, "bft_not-a-real-token")


def test_revoked_token_is_refused(session, build):
    _, issued = _token(session, build)
    users.revoke_token(session, actor=SYSTEM, token_id=issued.id)
    with pytest.raises(Unauthenticated):
        users.authenticate(session, issued.token)


def test_expired_token_is_refused(session, build):
    _, issued = _token(session, build)
    session.get(ApiToken, issued.id).expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    session.expire_all()  # read the expiry back from the database (naive on SQLite)
    with pytest.raises(Unauthenticated):
        users.authenticate(session, issued.token)


def test_token_of_inactive_user_is_refused(session, build):
    user, issued = _token(session, build)
    users.update_user(session, actor=SYSTEM, user_id=user.id, data=UserUpdate(is_active=False))
    with pytest.raises(Unauthenticated):
        users.authenticate(session, issued.token)


def test_users_manage_only_their_own_tokens(session, build):
    ann, bob = build.user("ann"), build.user("bob")
    ann_actor = build.actor(ann)
    own = users.create_token(session, actor=ann_actor, user_id=ann.id, data=TokenCreate())
    assert own.user_id == ann.id
    with pytest.raises(PermissionDenied):
        users.create_token(session, actor=ann_actor, user_id=bob.id, data=TokenCreate())
    bobs = users.create_token(session, actor=SYSTEM, user_id=bob.id, data=TokenCreate())
    with pytest.raises(NotFound):
        users.revoke_token(session, actor=ann_actor, token_id=bobs.id)
    assert [t.id for t in TokenRepository(session, ann_actor).list()] == [own.id]
    users.authenticate(session, bobs.token)  # still valid
