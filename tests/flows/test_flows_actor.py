"""Who did it is never lost: flows run as their `actor`, checked before anything is done,
and the CLI passes its own named user; every row and event they write carries it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer.main
from sqlalchemy import func, select

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import NotFound, PermissionDenied, Unauthenticated
from bifrost_core.events.models import Event
from bifrost_core.models import Base
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.models import User
from bifrost_core.users.schemas import MembershipCreate, TokenCreate, UserCreate, UserUpdate
from bifrost_core.versions.models import Version
from cli.errors import EXIT_FORBIDDEN
from cli.main import app
from tests.support.ingest import frames
from tests.support.runs import invoke


@pytest.fixture
def cli_env(flow_env, prefect_api, monkeypatch) -> dict[str, str]:
    """The CLI's flows report to the session's Prefect server (no server per command)."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    return flow_env


@pytest.fixture
def people(database: Database, production) -> dict[str, str]:
    """Users of DEMO by role (one inactive, one of another project only); -> ben's API token."""
    with UnitOfWork(database) as uow:
        session = uow.session
        other = projects.create_project(session, actor=SYSTEM, data=ProjectCreate(code="OTHER", name="O"))
        cast = [
            ("ann", production.project_id, "artist"),
            ("ben", production.project_id, "supervisor"),
            ("cid", production.project_id, "client"),
            ("dot", production.project_id, "coordinator"),
            ("eve", other.id, "coordinator"),
        ]
        for name, project_id, role in cast:
            user = users.create_user(session, actor=SYSTEM, data=UserCreate(username=name))
            membership = MembershipCreate(user_id=user.id, role=role)
            users.set_membership(session, actor=SYSTEM, project_id=project_id, data=membership)
            if name == "ben":
                token = users.create_token(session, actor=SYSTEM, user_id=user.id, data=TokenCreate())
            if name == "dot":
                users.update_user(session, actor=SYSTEM, user_id=user.id, data=UserUpdate(is_active=False))
        uow.commit()
    return {"ben": token.token}


def login(monkeypatch, name: str) -> None:
    """`name` as the operating-system login (getpass reads these first); no BIFROST_USER."""
    monkeypatch.delenv("BIFROST_USER", raising=False)
    for variable in ("LNAME", "USERNAME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LOGNAME", name)
    monkeypatch.setenv("USER", name)


def who(database: Database, *kinds: str) -> list[str | None]:
    """Who did each event of these kinds, oldest first, by username (None: nobody)."""
    with UnitOfWork(database) as uow:
        names = dict(uow.session.execute(select(User.id, User.username)).all())
        events = select(Event.actor_id).where(Event.kind.in_(kinds)).order_by(Event.id)
        return [names.get(actor_id) for actor_id in uow.session.scalars(events)]


def row_counts(database: Database) -> dict[str, int]:
    with UnitOfWork(database) as uow:
        return {
            table.name: uow.session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def test_the_cli_runs_flows_as_its_named_user(
    database, production, people, cli_env, prefect_server, delivery, tmp_path, monkeypatch
) -> None:
    # The login name maps to the Bifrost user ann (an artist: she may publish).
    login(monkeypatch, "ann")
    paths = frames(tmp_path / "work", "comp", 1001, 1003)
    invoke("publish", *paths, "--project", "DEMO", "--shot", "sq010/sh010", "--task", "comp", "--json")
    # The comp task was made on the fly: by ann too.
    assert who(database, "version.created", "task.created", "ingest.finished") == ["ann"] * 3

    # A token wins over the login name: ben (a supervisor) ingests.
    monkeypatch.setenv("BIFROST_TOKEN", people["ben"])
    created = json.loads(invoke("ingest", delivery, "--project", "DEMO", "--json").output)["created"]
    assert len(created) == 3
    assert who(database, "version.created") == ["ann", "ben", "ben", "ben"]
    assert who(database, "ingest.finished") == ["ann", "ben"]
    with UnitOfWork(database) as uow:
        authors = uow.session.scalars(
            select(User.username).join(Version, Version.author_id == User.id).order_by(Version.id)
        )
        assert list(authors) == ["ann", "ben", "ben", "ben"]

    # Nobody by that name on a configured database, or a user the flow would refuse (ann may
    # not ingest): one line, exit 6, nothing written, no run started.
    monkeypatch.delenv("BIFROST_TOKEN")
    before = row_counts(database)
    publish = ("publish", *paths, "--project", "DEMO", "--asset", "chair", "--task", "look")
    ingest = ("ingest", delivery, "--project", "DEMO")
    for login_name, command, message in (
        ("zed", publish, "no Bifrost user 'zed' (your operating-system login): set BIFROST_TOKEN"),
        ("zed", ingest, "no Bifrost user 'zed' (your operating-system login): set BIFROST_TOKEN"),
        ("ann", ingest, "actor 'ann' (artist in DEMO) may not start ingest flows and read their runs"),
    ):
        login(monkeypatch, login_name)
        result = invoke(*command, code=EXIT_FORBIDDEN)
        assert result.output.startswith(f"error: {message}")
        assert result.output.count("\n") == 1
    assert row_counts(database) == before


def _ingest(actor: str, delivery: Path):
    from flows.ingest import ingest

    return ingest(actor=actor, project="DEMO", source=str(delivery), return_state=True)


def _publish(actor: str, delivery: Path):
    from flows.publish import publish

    plate = delivery / "sq010" / "sh010" / "plate" / "plate.mov"
    return publish(
        actor=actor, project="DEMO", asset="chair", task="look", files=[str(plate)], return_state=True
    )


REFUSED = [
    (_ingest, "ghost", Unauthenticated, "actor 'ghost' is not an active Bifrost user"),
    (_ingest, "dot", Unauthenticated, "actor 'dot' is not an active Bifrost user"),
    (
        _ingest,
        "ann",
        PermissionDenied,
        "actor 'ann' (artist in DEMO) may not start ingest flows and read their runs",
    ),
    (
        _publish,
        "cid",
        PermissionDenied,
        "actor 'cid' (client in DEMO) may not start publish flows and read their runs",
    ),
    (_publish, "eve", NotFound, "project 'DEMO' not found"),
]


@pytest.mark.parametrize(
    ("run", "actor", "error", "message"), REFUSED, ids=[f"{r[0].__name__}-{r[1]}" for r in REFUSED]
)
def test_a_flow_run_refuses_an_actor_who_may_not_start_it(
    database, production, people, flow_env, settings, prefect_server, delivery, run, actor, error, message
) -> None:
    before = row_counts(database)
    state = run(actor, delivery)
    assert state.is_failed()
    failure = state.result(raise_on_failure=False)
    assert type(failure) is error
    assert str(failure) == message
    assert message in state.message and "\n" not in state.message
    # Refused before anything was planned, stored or recorded.
    assert row_counts(database) == before
    assert not any(Path(settings.tier_roots["hot"]).iterdir())


def leaf_commands(command, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every runnable command of the CLI's command tree, as its words."""
    children = getattr(command, "commands", None)
    if children is None:
        return {path}
    return {leaf for name, child in children.items() for leaf in leaf_commands(child, (*path, name))}


# Commands the session below does not run, and why.
# Commands the session runs where they refuse, with their exit code.
REFUSED = {("render", "retry-failed"): 4}  # nothing failed yet: one line, nothing written
RENDER_JOB = ("DEMO", "--shot", "SQ030/SH010", "--task", "anim", "--frames", "1-4", "--chunk-size", "2")
NOT_RUN = {
    ("serve",): "serves the API, where each request acts as its token's user",
    ("gateway",): "serves it through HAProxy, likewise",
    # Processes, not records: the local Prefect server and a worker write no Bifrost row
    # (the runs a worker starts are the flows' own, run above as `flow run`).
    ("server", "start"): "starts a Prefect server process",
    ("server", "stop"): "stops it",
    ("server", "status"): "reads its state file",
    ("worker",): "runs a Prefect worker until stopped",
    # Copies of the database and its restore (tests/cli/test_cli_backup.py and
    # tests/infra/test_backup_postgres.py): they write no row, and a restore brings back rows
    # as their own users wrote them.
    ("backup", "create"): "copies the database (SQLite's backup API, or pgBackRest)",
    ("backup", "status"): "reads the backup repository and pg_stat_archiver",
    ("backup", "restore"): "replaces the database by a copy",
}


def first_version(database) -> str:
    with UnitOfWork(database) as uow:
        return str(uow.session.scalar(select(func.min(Version.id))))


def last_version(database) -> str:
    with UnitOfWork(database) as uow:
        return str(uow.session.scalar(select(func.max(Version.id))))


# Who did it is written by the same code on either database; a studio's session runs on PostgreSQL.
@pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_cli_session_leaves_no_row_or_event_without_its_user(
    database, cli_env, prefect_server, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("BIFROST_USER", "opal")
    delivery = tmp_path / "delivery"
    frames(delivery / "SQ030" / "SH010" / "comp", "comp", 1001, 1002)
    files = frames(tmp_path / "work", "fx", 1001, 1002)
    token: dict[str, str] = {}
    render: dict[str, str] = {}
    reviewed: dict[str, str] = {}  # ids of the review session's playlist and note
    # A GPU host, as `bifrost worker --gpus 2` declares it: render jobs may be submitted.
    made = httpx.post(f"{prefect_server}/v2/concurrency_limits/", json={"name": "gpu:actor-host", "limit": 2})
    assert made.status_code in (201, 409), made.text  # 409: made by the other database's run
    session: list[tuple[tuple[str, ...], Callable[[], tuple[object, ...]]]] = [
        (("init",), lambda: ()),  # a new database: opal, who initialises it, is its first admin
        (("demo",), lambda: ()),
        (("project", "create"), lambda: ("FILM",)),
        (("project", "list"), lambda: ()),
        (("project", "show"), lambda: ("DEMO",)),
        (("episode", "create"), lambda: ("DEMO", "EP01")),
        (("episode", "list"), lambda: ("DEMO",)),
        (("episode", "show"), lambda: ("DEMO", "EP01")),
        (("sequence", "create"), lambda: ("DEMO", "SQ030", "--episode", "EP01")),
        (("sequence", "list"), lambda: ("DEMO",)),
        (("sequence", "show"), lambda: ("DEMO", "SQ030")),
        (("shot", "create"), lambda: ("DEMO", "SQ030", "SH010")),
        (("shot", "list"), lambda: ("DEMO",)),
        (("shot", "show"), lambda: ("DEMO", "SQ030", "SH010")),
        (("asset", "create"), lambda: ("DEMO", "lamp", "--type", "prop")),
        (("asset", "list"), lambda: ("DEMO",)),
        (("asset", "show"), lambda: ("DEMO", "lamp")),
        (("casting", "cast"), lambda: ("DEMO", "SQ030", "SH010", "lamp")),
        (("casting", "list"), lambda: ("DEMO",)),
        (("casting", "uncast"), lambda: ("DEMO", "SQ030", "SH010", "lamp")),
        (("task", "create"), lambda: ("DEMO", "SQ030/SH010", "anim", "--assignee", "alice")),
        (("task", "list"), lambda: ("DEMO",)),
        (("task", "show"), lambda: ("DEMO", "SQ030/SH010", "anim")),
        (("task", "set-status"), lambda: ("DEMO", "SQ030/SH010", "anim", "ip")),
        (("ingest",), lambda: (delivery, "--project", "DEMO")),
        (("publish",), lambda: (*files, "--project", "DEMO", "--shot", "SQ030/SH010", "--task", "fx")),
        (("version", "list"), lambda: ("DEMO",)),
        (("version", "show"), lambda: ("DEMO", "SQ030/SH010", "fx")),
        (("version", "files"), lambda: ("DEMO", "SQ030/SH010", "fx")),
        (("review", "media"), lambda: (first_version(database), "--force")),
        (
            ("review", "playlist", "create"),
            lambda: ("DEMO", "dailies", "--version", first_version(database), "--json"),
        ),
        (("review", "playlist", "add"), lambda: (reviewed["playlist"], last_version(database))),
        (("review", "playlist", "list"), lambda: ("DEMO",)),
        (("review", "playlist", "show"), lambda: (reviewed["playlist"],)),
        (("review", "note", "add"), lambda: (first_version(database), "too dark", "--json")),
        (("review", "note", "list"), lambda: (first_version(database),)),
        (("review", "reply"), lambda: (reviewed["note"], "fixed")),
        (("review", "request-changes"), lambda: (first_version(database), "--comment", "grade")),
        (("review", "approve"), lambda: (last_version(database),)),
        (("user", "set-password"), lambda: ("opal", "--password-stdin")),
        (("workflow", "show"), lambda: ("DEMO",)),
        (("token", "create"), lambda: ("alice", "--json")),
        (("token", "list"), lambda: ()),
        (("token", "revoke"), lambda: (token["id"],)),
        (("flow", "list"), lambda: ()),
        (("flow", "show"), lambda: ("publish",)),
        (("flow", "run"), lambda: ("ingest", "-p", "DEMO", "--param", f"source={delivery}")),
        (("deploy",), lambda: ()),
        (("flow", "run"), lambda: ("ingest", "-p", "DEMO", "--param", f"source={delivery}", "--deployment")),
        (("flow", "reconcile"), lambda: ()),
        (("render", "submit"), lambda: (*RENDER_JOB, "--json", "--", "echo", "{first}")),
        (("render", "list"), lambda: ("DEMO",)),
        (("render", "show"), lambda: (render["id"],)),
        (("render", "retry-failed"), lambda: (render["id"],)),
        (("render", "cancel"), lambda: (render["id"],)),
        (("verify",), lambda: ()),
        (("storage", "gc"), lambda: ()),
        (("storage", "du"), lambda: ()),
        (("storage", "replicas"), lambda: ()),
        (("archive", "policy", "set"), lambda: ("DEMO", "--keep-latest", "1")),
        (("archive", "policy", "show"), lambda: ("DEMO",)),
        (("archive", "final"), lambda: ("SQ030/SH010", "-p", "DEMO")),
        (("archive", "run"), lambda: ("--project", "DEMO")),
        (("archive", "restore"), lambda: ("--version", first_version(database))),
    ]
    # Generated from the command tree: a new command fails here until the session runs it.
    assert {words for words, _ in session} | set(NOT_RUN) == leaf_commands(typer.main.get_command(app))
    for words, arguments in session:
        typed = "a long enough password\n" if words == ("user", "set-password") else None
        result = invoke(*words, *arguments(), code=REFUSED.get(words, 0), input=typed)
        if words == ("review", "playlist", "create"):
            reviewed["playlist"] = str(json.loads(result.output)["id"])
        if words == ("review", "note", "add"):
            reviewed["note"] = str(json.loads(result.output)["id"])
        if words == ("token", "create"):
            token["id"] = str(json.loads(result.output)["id"])
        if words == ("render", "submit"):
            render["id"] = str(json.loads(result.output)["id"])

    with UnitOfWork(database) as uow:
        opal = uow.session.scalar(select(User.id).where(User.username == "opal"))
        assert uow.session.scalar(select(func.count()).select_from(Event)) > 100
        # Every "who did it" column (a nullable reference to a user), from the models.
        who_columns = [
            column
            for table in Base.metadata.sorted_tables
            for column in table.columns
            if column.nullable and any(key.column.table.name == "users" for key in column.foreign_keys)
        ]
        assert {f"{c.table.name}.{c.name}" for c in who_columns} >= {"events.actor_id", "versions.author_id"}
        for column in who_columns:
            found = set(uow.session.scalars(select(column).distinct()))
            assert found <= {opal}, f"{column.table.name}.{column.name}: {found}"
