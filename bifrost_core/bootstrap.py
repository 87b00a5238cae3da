"""Opening Bifrost's database and preparing a home: shared by the CLI, the API and flows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from bifrost_core.cache.entities import invalidate_on_commit
from bifrost_core.config import Settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.models import User
from bifrost_core.users.schemas import TokenCreate, TokenIssued, UserCreate


def open_database(settings: Settings, *, require_schema: bool = True) -> Database:
    """Connect, check the server answers, and refuse to run on a schema that is behind."""
    database = Database(settings.database, pool_size=settings.db_pool_size)
    database.check()
    invalidate_on_commit(settings.redis_url)
    if require_schema and not migrate.is_up_to_date(database):
        database.dispose()
        raise ConfigError("the database schema is not up to date: run `bifrost init`")
    return database


@dataclass
class InitResult:
    database: Database
    admin_token: TokenIssued | None


def initialise(settings: Settings) -> InitResult:
    """Create the home folders, migrate to head, check every tier root and, on a new
    database, create the first admin.

    The default tier roots under the home are created; every other root (the studio's
    settings, each project's own tiers) must exist and take a write, else ConfigError names
    each that does not, before any admin (and its token, shown once) is made.
    """
    # Imported here: the storage package pulls in fsspec and blake3.
    from bifrost_core.ingest.roots import check_every_root

    # Reach the database first, so an unreachable server leaves no home behind.
    database = open_database(settings, require_schema=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(database)
    try:
        check_every_root(database, settings)
    except BaseException:
        database.dispose()
        raise
    admin_token = None
    with UnitOfWork(database) as uow:
        if not uow.session.scalar(select(func.count(User.id))):
            admin = users.create_user(
                uow.session,
                actor=SYSTEM,
                data=UserCreate(username="admin", name="Administrator", is_admin=True),
            )
            admin_token = users.create_token(
                uow.session, actor=SYSTEM, user_id=admin.id, data=TokenCreate(name="bootstrap")
            )
            uow.commit()
    return InitResult(database=database, admin_token=admin_token)
