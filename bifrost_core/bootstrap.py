"""Opening Bifrost's database and preparing a home: shared by the CLI, the API and flows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select

from bifrost_core.cache.entities import invalidate_on_commit
from bifrost_core.config import Settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.scope import SERVICE_USER, Actor
from bifrost_core.users import identity
from bifrost_core.users import service as users
from bifrost_core.users.models import ApiToken, User
from bifrost_core.users.schemas import TokenCreate, TokenIssued, UserCreate


def open_database(settings: Settings, *, require_schema: bool = True) -> Database:
    """Connect, check the server answers, and refuse to run on a schema that is behind."""
    database = Database(settings.database, pool_size=settings.db_pool_size)
    database.check()
    invalidate_on_commit(settings.redis_url)
    if require_schema and not migrate.is_up_to_date(database):
        try:
            migrate.refuse_unknown_revisions(database)
        finally:
            database.dispose()
        raise ConfigError("the database schema is not up to date: run `bifrost init`")
    return database


ADMIN = "admin"


@dataclass
class InitResult:
    database: Database
    admin_token: TokenIssued | None
    # Who initialised, when it had to be known (see `initialise`).
    operator: Actor | None = None
    # The service user scheduled runs act as: what init found or did (None: not looked at).
    service_user: str | None = None


def initialise(settings: Settings) -> InitResult:
    """Create the home folders, migrate to head, check every tier root, and give the first
    admin its token.

    The default tier roots under the home are created; every other root (the studio's
    settings, each project's own tiers) must exist and take a write, else ConfigError names
    each that does not, before any admin (and its token, shown once) is made.

    Migrating needs no Bifrost identity. Making the user 'admin' and its token (once: while
    'admin' has never had a token) and the service user scheduled runs act as
    (SERVICE_USER, while missing) is done by the operator, who is then created as an admin
    if missing: always on the embedded default (the operator owns the home), and on a
    configured database only while it has no user at all (whoever initialises a new
    database runs it). The embedded default's operator is identified (and created) even when
    there is nothing else to do.
    """
    # Imported here: the storage package pulls in fsspec and blake3.
    from bifrost_core.ingest.roots import check_every_root
    from bifrost_core.replication.service import check_replicas

    # Reach the database first, so an unreachable server leaves no home behind.
    database = open_database(settings, require_schema=False)
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(database)
        check_every_root(database, settings)
        check_replicas(database, settings)
        with UnitOfWork(database) as uow:
            session = uow.session
            admin = session.scalar(select(User).where(User.username == ADMIN))
            token_due = admin is None or not session.scalar(
                select(exists().where(ApiToken.user_id == admin.id))
            )
            owns_home = not settings.database_url
            service_missing = not session.scalar(select(exists().where(User.username == SERVICE_USER)))
            if not (token_due or owns_home or service_missing):
                return InitResult(database=database, admin_token=None)
            new_database = not session.scalar(select(exists().select_from(User)))
            operator = identity.operator(session, settings, may_create=owns_home or new_database)
            admin_token = None
            if token_due:
                if admin is None:
                    data = UserCreate(username=ADMIN, name="Administrator", is_admin=True)
                    admin = users.create_user(session, actor=operator, data=data)
                admin_token = users.create_token(
                    session, actor=operator, user_id=admin.id, data=TokenCreate(name="bootstrap")
                )
            service_user = identity.ensure_service_user(session, actor=operator, username=SERVICE_USER)
            uow.commit()
    except BaseException:
        database.dispose()
        raise
    return InitResult(
        database=database, admin_token=admin_token, operator=operator, service_user=service_user
    )
