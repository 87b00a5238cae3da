"""`bifrost review` and `bifrost user set-password`: the happy path, and bad input as one line
with nothing written."""

from __future__ import annotations

import json

import pytest

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks.models import Task
from bifrost_core.users import service as users
from bifrost_core.users.models import User
from bifrost_core.users.schemas import MembershipCreate, UserCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate
from cli.errors import EXIT_CONFLICT, EXIT_FORBIDDEN, EXIT_INVALID, EXIT_NOT_FOUND


@pytest.fixture
def reviewed(production) -> dict[str, int]:
    """DEMO's SQ010/SH010 anim task with a version of frames 1001-1010, and an
    artist and a client of the project."""
    database = Database(load_settings().database)
    try:
        with UnitOfWork(database) as uow:
            session = uow.session

            task = session.query(Task).filter_by(name="anim").one()
            record_blobs(session, [("ab" * 32, 1, "file:///hot/x")], "hot")
            files = [{"name": "plate.1001.exr", "blob_hash": "ab" * 32, "frame": 1001}]
            data = VersionCreate(
                task_id=task.id,
                representations=[
                    {"name": "plate", "kind": "frames", "frame_in": 1001, "frame_out": 1010, "files": files}
                ],
            )
            version = versions.create_version(session, actor=SYSTEM, data=data)
            for name, role in (("artie", "artist"), ("clio", "client")):
                user = users.create_user(session, actor=SYSTEM, data=UserCreate(username=name))
                users.set_membership(
                    session,
                    actor=SYSTEM,
                    project_id=task.project_id,
                    data=MembershipCreate(user_id=user.id, role=role),
                )
            ids = {"version": version.id, "task": task.id}
            uow.commit()
    finally:
        database.dispose()
    return ids


def test_a_review_session_from_the_command_line(reviewed, bifrost, peek):
    version = reviewed["version"]
    created = bifrost("review", "playlist", "create", "DEMO", "dailies", "--version", version, "--json")
    playlist = json.loads(created.output)
    assert playlist["version_ids"] == [version]
    note = bifrost("review", "note", "add", version, "too dark", "--frame", 1004, "--json")
    assert json.loads(note.output)["frame_in"] == 1004
    bifrost("review", "reply", json.loads(note.output)["id"], "fixed in v002")
    listed = json.loads(bifrost("review", "note", "list", version, "--json").output)
    assert [n["body"] for n in listed] == ["too dark", "fixed in v002"]
    # The version moved its task to review when it was made (statuses follow new versions).
    out = bifrost(
        "review", "request-changes", version, "--comment", "grade", "--playlist", playlist["id"]
    ).output
    assert "changes_requested" in out and "retake" in out
    shown = json.loads(bifrost("review", "playlist", "show", playlist["id"], "--json").output)
    assert shown["name"] == "dailies"
    assert "dailies" in bifrost("review", "playlist", "list", "DEMO").output


def test_set_password_stores_an_argon2id_hash(reviewed, bifrost, peek):
    bifrost("user", "set-password", "artie", "--password-stdin", input="correct horse battery\n")
    with peek() as session:
        stored = session.query(User).filter_by(username="artie").one().password_hash
    assert stored.startswith("$argon2id$")


BAD = [
    (("review", "note", "add", "999999", "x"), EXIT_NOT_FOUND, "version 999999 not found", None),
    (("review", "note", "add", "{version}", "x", "--frame", "1011"), EXIT_INVALID, "outside version", None),
    (
        ("review", "note", "add", "{version}", "x", "--frame", "1005", "--frame-out", "1002"),
        EXIT_INVALID,
        "frame_out must not be before frame_in",
        None,
    ),
    (("review", "note", "add", "{version}", ""), EXIT_INVALID, "body:", None),
    (("review", "reply", "999999", "x"), EXIT_NOT_FOUND, "note 999999 not found", None),
    (("review", "approve", "{version}"), EXIT_FORBIDDEN, "artist may not", "artie"),
    (("review", "request-changes", "{version}"), EXIT_FORBIDDEN, "client may not", "clio"),
    (("review", "playlist", "create", "DEMO", "x"), EXIT_FORBIDDEN, "artist may not", "artie"),
    (("review", "playlist", "create", "DEMO", "x", "--kind", "weekly"), EXIT_INVALID, "kind:", None),
    (
        ("review", "playlist", "create", "DEMO", "x", "--version", "424242"),
        EXIT_INVALID,
        "version 424242",
        None,
    ),
    (("review", "playlist", "add", "999999", "{version}"), EXIT_NOT_FOUND, "playlist 999999 not found", None),
    (("review", "playlist", "list", "NOPE"), EXIT_NOT_FOUND, "project 'NOPE' not found", None),
    (("user", "set-password", "artie"), EXIT_INVALID, "10 to 1024 characters", None),
    (("user", "set-password", "admin"), EXIT_FORBIDDEN, "only an admin", "artie"),
]


@pytest.mark.parametrize(("args", "code", "message", "user"), BAD, ids=[" ".join(c[0]) for c in BAD])
def test_bad_input_is_one_line_and_writes_nothing(reviewed, bifrost, row_counts, args, code, message, user):
    argv = [arg.format(**reviewed) for arg in args]
    before = row_counts()
    env = {"BIFROST_USER": user} if user else None
    stdin = "short\n" if args[0] == "user" else None
    if stdin:
        argv.append("--password-stdin")
    result = bifrost(*argv, code=code, env=env, input=stdin)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert row_counts() == before


def test_a_decision_the_version_workflow_refuses_changes_nothing(reviewed, bifrost, row_counts):
    bifrost("review", "request-changes", str(reviewed["version"]))
    before = row_counts()
    result = bifrost("review", "approve", str(reviewed["version"]), code=EXIT_CONFLICT)
    assert "from 'changes_requested' to 'approved'" in result.output
    assert row_counts() == before
