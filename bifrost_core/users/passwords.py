"""Local passwords for the web interface: argon2id (argon2-cffi's defaults, RFC 9106's
low-memory profile), one generic failure for every wrong user, password or state."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.errors import InvalidInput, Unauthenticated
from bifrost_core.events.service import record
from bifrost_core.scope import Actor
from bifrost_core.users import permissions
from bifrost_core.users.models import User
from bifrost_core.users.repository import UserRepository

MIN_LENGTH = 10
# Hashing is the cost: a megabyte of password would only make every guess slower to refuse.
MAX_LENGTH = 1024
WRONG = "wrong username or password"

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that an unknown name costs the same time.
_DUMMY = _hasher.hash("not a password of anyone")


def set_password(session: Session, *, actor: Actor, username: str, password: str) -> User:
    """Users set their own password; admins anyone's."""
    user = UserRepository(session, actor).by_username(username)
    if actor.user_id != user.id:
        permissions.require_admin(actor, "set other users' passwords")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters")
    if "\x00" in password:
        raise InvalidInput("a password cannot contain NUL")
    user.password_hash = _hasher.hash(password)
    session.flush()
    record(
        session, actor=actor, kind="user.password_set", entity_type="user", entity_id=user.id, project_id=None
    )
    return user


def check_password(session: Session, *, username: str, password: str) -> User:
    """The active user with this username and password, else Unauthenticated(WRONG)."""
    user = session.scalar(select(User).where(User.username == username)) if len(username) <= 64 else None
    encoded = user.password_hash if user is not None and user.password_hash else _DUMMY
    try:
        if len(password) > MAX_LENGTH:
            raise VerifyMismatchError
        _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise Unauthenticated(WRONG) from None
    if user is None or not user.password_hash or not user.is_active:
        raise Unauthenticated(WRONG)
    if _hasher.check_needs_rehash(encoded):
        user.password_hash = _hasher.hash(password)
    return user
