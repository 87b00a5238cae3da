"""What every Bifrost task needs: the settings and one Database per process and URL.

Tasks receive and return plain data; each opens its own units of work from here.
"""

from __future__ import annotations

from bifrost_core.bootstrap import open_database
from bifrost_core.config import Settings, load_settings
from bifrost_core.db.database import Database

_databases: dict[str, Database] = {}


def context() -> tuple[Settings, Database]:
    """Settings as the environment gives them now, and a (reused) checked database."""
    settings = load_settings()
    database = _databases.get(settings.database)
    if database is None:
        database = _databases[settings.database] = open_database(settings)
    return settings, database
