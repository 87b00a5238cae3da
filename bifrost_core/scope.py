"""Who is acting, and which projects they can see.

Every repository filters by the actor's project scope, so an id from a project the
caller is not in is simply not found (authorization by construction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str
    is_admin: bool = False
    # project id -> role, for non-admins; admins see every project.
    roles: Mapping[int, str] = field(default_factory=dict)

    @property
    def project_ids(self) -> frozenset[int] | None:
        """The projects this actor may see; None means all of them."""
        return None if self.is_admin else frozenset(self.roles)

    def can_see(self, project_id: int) -> bool:
        return self.is_admin or project_id in self.roles

    def role_in(self, project_id: int) -> str | None:
        return "admin" if self.is_admin else self.roles.get(project_id)


# Nobody in particular, seeing every project: for what no person does (internal lookups,
# upkeep) and for tests' set-up. The API, the CLI and flows always act as a named user.
SYSTEM = Actor(user_id=None, username="system", is_admin=True)

# The account scheduled runs act as (`{"actor": SERVICE_USER}` in a schedule's parameters):
# an admin without a token, made by `bifrost init` and `bifrost deploy`
# (users.identity.ensure_service_user). A fixed name, not a setting: the schedules in the
# committed prefect.yaml name it.
SERVICE_USER = "bifrost-service"
