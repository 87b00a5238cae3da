"""What every Bifrost task needs: the settings and one Database per process and URL.

Tasks receive and return plain data; each opens its own units of work from here.
"""

from __future__ import annotations

import os

from bifrost_core.bootstrap import open_database
from bifrost_core.config import Settings, load_settings
from bifrost_core.db.database import Database

_databases: dict[str, Database] = {}
_settings: tuple[tuple[object, ...], Settings] | None = None


def context() -> tuple[Settings, Database]:
    """Settings as the environment gives them now, and a (reused) checked database."""
    settings = current_settings()
    database = _databases.get(settings.database)
    if database is None:
        database = _databases[settings.database] = open_database(settings)
    return settings, database


def current_settings() -> Settings:
    """`load_settings()`, read again only when what it reads has changed: the BIFROST_*
    variables and the working folder's `.env` (a render chunk asks at every heartbeat, and a
    read costs milliseconds of pydantic-settings)."""
    global _settings
    key = (
        *_dotenv_stamp(),
        *sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("BIFROST_")),
    )
    if _settings is None or _settings[0] != key:
        _settings = (key, load_settings())
    return _settings[1]


def _dotenv_stamp() -> tuple[object, ...]:
    folder = os.getcwd()
    try:
        found = os.stat(os.path.join(folder, ".env"))
    except OSError:
        return (folder, None)
    return (folder, found.st_ino, found.st_size, found.st_mtime_ns)
