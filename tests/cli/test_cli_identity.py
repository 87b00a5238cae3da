"""Who the CLI acts as: a named Bifrost user (BIFROST_TOKEN, else BIFROST_USER or the login
name), recorded on every row and event a command writes; never nobody."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.events.models import Event
from bifrost_core.projects.models import Project
from bifrost_core.users import service as users
from bifrost_core.users.models import User
from bifrost_core.users.schemas import MembershipCreate, UserCreate, UserUpdate
from cli.errors import EXIT_CONFIG, EXIT_FORBIDDEN


@pytest.fixture
def login(monkeypatch):
    """`login(name)` makes `name` the operating-system login name (getpass reads these first)."""

    def set_login(name: str) -> None:
        for variable in ("LNAME", "USERNAME"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("LOGNAME", name)
        monkeypatch.setenv("USER", name)

    return set_login


@contextmanager
def committed() -> Iterator[Session]:
    """A unit of work on the CLI's database, committed at the end (what an admin does elsewhere)."""
    database = Database(load_settings().database)
    try:
        with UnitOfWork(database) as uow:
            yield uow.session
            uow.commit()
    finally:
        database.dispose()


def as_user(session: Session, username: str):
    return users.actor_for_user(session, session.scalar(select(User).where(User.username == username)))


def actors(peek, kind: str) -> list[str | None]:
    """The username of who did each event of `kind`, oldest first (None: nobody)."""
    with peek() as session:
        names = dict(session.execute(select(User.id, User.username)).all())
        rows = session.scalars(select(Event.actor_id).where(Event.kind == kind).order_by(Event.id))
        return [names.get(actor_id) for actor_id in rows]


def test_the_embedded_default_acts_as_the_login_and_makes_it_an_admin(bifrost, peek, login) -> None:
    login("carol")
    bifrost("project", "create", "FILM")  # first use: migrates, and carol owns the home
    with peek() as session:
        carol = session.scalar(select(User).where(User.username == "carol"))
        assert (carol.is_admin, carol.is_active) == (True, True)
    assert actors(peek, "user.created") == ["carol"]  # nobody else was there to create her
    assert actors(peek, "project.created") == ["carol"]

    init = bifrost("init").stdout
    assert "you act as the Bifrost user 'carol' (an admin)" in init
    token = init.strip().splitlines()[-1]
    assert token.startswith("bft_")
    # then 'admin' and the service user scheduled runs act as, by carol
    assert actors(peek, "user.created") == ["carol", "carol", "carol"]
    assert "service user 'bifrost-service' (scheduled runs act as it): created" in init
    assert actors(peek, "token.created") == ["carol"]

    # BIFROST_USER overrides the login (on the embedded default, it owns the home too);
    # BIFROST_TOKEN wins over both.
    bifrost("sequence", "create", "FILM", "SQ010", env={"BIFROST_USER": "dave"})
    both = {"BIFROST_USER": "dave", "BIFROST_TOKEN": token}
    bifrost("shot", "create", "FILM", "SQ010", "SH010", env=both)
    bifrost("shot", "create", "FILM", "SQ010", "SH020")
    assert actors(peek, "sequence.created") == ["dave"]
    assert actors(peek, "shot.created") == ["admin", "carol"]


def test_a_deactivated_or_unknown_identity_is_refused_in_one_line(bifrost, login, row_counts) -> None:
    login("carol")
    bifrost("project", "create", "FILM")
    with committed() as session:
        data = UserCreate(username="boss", is_admin=True)
        users.create_user(session, actor=as_user(session, "carol"), data=data)
        carol_id = as_user(session, "carol").user_id
        users.update_user(
            session, actor=as_user(session, "boss"), user_id=carol_id, data=UserUpdate(is_active=False)
        )
    before = row_counts()
    cases = [
        ({}, EXIT_FORBIDDEN, "error: Bifrost user 'carol' (your operating-system login) is deactivated"),
        ({"BIFROST_TOKEN": "bft_nope"}, EXIT_FORBIDDEN, "error: BIFROST_TOKEN: invalid or expired token"),
        ({"BIFROST_USER": "no body"}, EXIT_CONFIG, "error: BIFROST_USER: String should match pattern"),
    ]
    for env, code, message in cases:
        result = bifrost("project", "create", "NEW", env=env, code=code)
        assert result.stderr.startswith(message)
        assert result.stderr.count("\n") == 1
    assert row_counts() == before  # a deactivated user is not made again, nothing is written


@pytest.fixture
def pg_url(make_pg_database, monkeypatch, bifrost_env) -> str:
    url = make_pg_database()
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    return url


@pytest.mark.postgres
def test_a_configured_database_creates_nobody_behind_the_operators_back(
    bifrost, pg_url, peek, login, row_counts
) -> None:
    login("erin")
    init = bifrost("init").stdout  # a new database: whoever initialises it is its first admin
    assert "you act as the Bifrost user 'erin' (an admin)" in init
    token = init.strip().splitlines()[-1]
    bifrost("project", "create", "PG")
    bifrost("project", "create", "OTHER")
    bifrost("sequence", "create", "PG", "SQ010")
    before = row_counts()

    login("frank")
    for command in (("shot", "create", "PG", "SQ010", "SH010"), ("shot", "list", "PG"), ("verify",)):
        result = bifrost(*command, code=EXIT_FORBIDDEN)
        assert result.stderr == (
            "error: no Bifrost user 'frank' (your operating-system login): set BIFROST_TOKEN to one of "
            "your API tokens, or have an admin create the user 'frank' (POST /users)\n"
        )
    assert row_counts() == before
    assert "schema at head" in bifrost("init").stdout  # nothing to set up: no identity needed
    assert row_counts() == before

    # A token names its user; a user an admin made is found by the login name.
    bifrost("shot", "create", "PG", "SQ010", "SH010", env={"BIFROST_TOKEN": token})
    with committed() as session:
        erin = as_user(session, "erin")
        frank = users.create_user(session, actor=erin, data=UserCreate(username="frank"))
        project_id = session.scalar(select(Project.id).where(Project.code == "PG"))
        membership = MembershipCreate(user_id=frank.id, role="supervisor")
        users.set_membership(session, actor=erin, project_id=project_id, data=membership)
    bifrost("shot", "create", "PG", "SQ010", "SH020")
    assert actors(peek, "shot.created") == ["admin", "frank"]
    # The CLI reads as frank too: he sees his project only.
    assert [p["code"] for p in json.loads(bifrost("project", "list", "--json").stdout)] == ["PG"]
