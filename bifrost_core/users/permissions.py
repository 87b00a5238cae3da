"""The role table: which project role may do what. The one place permissions are decided.

Deny by default: an action missing from a role's row is refused. Admins (User.is_admin)
may do everything in every project. Visibility comes first and separately: repositories
only ever find rows of the caller's projects, so an id from another project answers 404
before any of these rules is asked.
"""

from __future__ import annotations

from collections.abc import Collection

from bifrost_core.errors import PermissionDenied
from bifrost_core.scope import Actor

# What each action covers, in the words of the README's role table.
ACTIONS: dict[str, str] = {
    "production.read": "read projects, episodes, sequences, shots, assets, casting, workflows",
    "tasks.read": "read task types and tasks",
    "versions.read": "read versions and representations",
    "notes.read_internal": (
        "read studio-internal notes and playlists (others see only those shared with clients)"
    ),
    "notes.read_shared": "read notes shared with clients",
    "events.read": "read the event log",
    "members.read": "read the project's memberships",
    "project.update": "change the project's settings and status workflows",
    "members.write": "add, change and remove memberships",
    "structure.write": "create and change episodes and sequences",
    "shots.write": "create and change shots, assets and casting",
    "tasks.write": "create task types and tasks; change due dates and assignees",
    "tasks.status": "move a task through its status workflow",
    "versions.create": "publish versions",
    "versions.review": "change a version's review status or comment; approve it or request changes",
    "notes.write": "write notes and replies (a client's are always shared with clients)",
    "playlists.write": "create playlists, change their versions and whether clients see them",
    "flows.ingest": "start ingest flows and read their runs",
    "flows.publish": "start publish flows and read their runs",
    "render.read": "read render jobs and their chunks",
    "render.submit": "submit render jobs; cancel and retry one's own",
    "render.manage": "cancel and retry anyone's render jobs",
}

_READ_ALL = {"production.read", "tasks.read", "versions.read", "notes.read_internal", "notes.read_shared"}

ROLE_TABLE: dict[str, frozenset[str]] = {
    "coordinator": frozenset(ACTIONS),
    "supervisor": frozenset(
        _READ_ALL
        | {
            "events.read",
            "members.read",
            "structure.write",
            "shots.write",
            "tasks.write",
            "tasks.status",
            "versions.create",
            "versions.review",
            "notes.write",
            "playlists.write",
            "flows.ingest",
            "flows.publish",
            "render.read",
            "render.submit",
            "render.manage",
        }
    ),
    # Artists render their own shots, as on Deadline (a submitter controls their own jobs);
    # stopping a colleague's job is for those who plan the farm.
    "artist": frozenset(
        _READ_ALL
        | {
            "events.read",
            "members.read",
            "tasks.status",
            "versions.create",
            "notes.write",
            "flows.publish",
            "render.read",
            "render.submit",
        }
    ),
    "client": frozenset({"production.read", "versions.read", "notes.read_shared", "notes.write"}),
    "service": frozenset(
        _READ_ALL
        | {
            "events.read",
            "tasks.status",
            "versions.create",
            "notes.write",
            "flows.ingest",
            "flows.publish",
            "render.read",
            "render.manage",
        }
    ),
}

ROLES = tuple(ROLE_TABLE)

# Actions a role may take only on tasks assigned to the actor: an artist moves their own
# tasks along the workflow, not a colleague's.
OWN_TASKS_ONLY: dict[str, frozenset[str]] = {"artist": frozenset({"tasks.status"})}


def allowed(actor: Actor, action: str, project_id: int) -> bool:
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    if actor.is_admin:
        return True
    role = actor.roles.get(project_id)
    return role is not None and action in ROLE_TABLE.get(role, frozenset())


def require(actor: Actor, action: str, project_id: int) -> None:
    if not allowed(actor, action, project_id):
        role = actor.role_in(project_id) or "no role"
        raise PermissionDenied(f"{role} may not {ACTIONS[action]}", action=action)


def require_on_task(actor: Actor, action: str, project_id: int, assignee_ids: Collection[int]) -> None:
    """`require`, and for a role limited to its own tasks, that the actor is an assignee."""
    require(actor, action, project_id)
    role = actor.role_in(project_id)
    if role in OWN_TASKS_ONLY and action in OWN_TASKS_ONLY[role] and actor.user_id not in assignee_ids:
        raise PermissionDenied(f"{role} may {ACTIONS[action]} only when assigned to it", action=action)


def require_admin(actor: Actor, what: str) -> None:
    if not actor.is_admin:
        raise PermissionDenied(f"only an admin can {what}")


def markdown_table() -> str:
    """The role table as markdown, for the README (a test keeps the two equal)."""
    roles = ["admin", *ROLES]
    lines = ["| action | " + " | ".join(roles) + " |", "| --- |" + " :-: |" * len(roles)]
    for action, words in ACTIONS.items():
        marks = ["✓"] + [_mark(role, action) for role in ROLES]
        lines.append(f"| `{action}`: {words} | " + " | ".join(marks) + " |")
    return "\n".join(lines)


def _mark(role: str, action: str) -> str:
    if action not in ROLE_TABLE[role]:
        return ""
    return "own tasks" if action in OWN_TASKS_ONLY.get(role, frozenset()) else "✓"
