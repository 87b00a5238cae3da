from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.errors import NotFound
from bifrost_core.users.models import ApiToken, ProjectMembership, User


class UserRepository(Repository[User]):
    """Users are studio-wide: admins manage them, so there is no project scope."""

    model = User
    label = "user"

    def _scoped(self, stmt):
        return stmt

    def by_username(self, username: str) -> User:
        user = self.first(User.username == username)
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user


class MembershipRepository(Repository[ProjectMembership]):
    model = ProjectMembership
    label = "membership"


class TokenRepository(Repository[ApiToken]):
    """Tokens are only ever looked up by their owner or by their hash."""

    model = ApiToken
    label = "token"

    def _scoped(self, stmt):
        if self.actor.is_admin:
            return stmt
        return stmt.where(ApiToken.user_id == self.actor.user_id)
