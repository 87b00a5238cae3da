"""Settings: one object, read from `BIFROST_*` variables and an optional `.env`.

The embedded default needs nothing set: a SQLite file and local folders under
`BIFROST_HOME`. A studio points the same settings at PostgreSQL, Redis, S3 and
OpenSearch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bifrost_core.errors import ConfigError

SUPPORTED_DATABASES = ("sqlite", "postgresql")
# The synchronous drivers that are installed; any other one fails later with a traceback.
SUPPORTED_DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BIFROST_", env_file=".env", extra="ignore", validate_default=True
    )

    home: Path = Field(default=Path("~/.bifrost"), description="Where the embedded default keeps its files")
    database_url: str = Field(default="", description="SQLAlchemy URL; a SQLite file in the home when empty")
    hot_root: str = Field(default="", description="Root URL of the hot tier (a folder or an fsspec URL)")
    archive_root: str = Field(default="", description="Root URL of the archive tier")
    redis_url: str = Field(
        default="", description="Redis URL for cache and rate limits; in-process when empty"
    )
    db_pool_size: int = Field(default=5, ge=1, le=200)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    api_rate_limit: int = Field(default=6000, ge=0, description="API requests per minute per token; 0: off")
    api_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest API request body")

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url", mode="after")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        if url.get_backend_name() not in SUPPORTED_DATABASES:
            raise ValueError(f"unsupported database {url.get_backend_name()!r} (use sqlite or postgresql)")
        if "+" in url.drivername and url.get_driver_name() not in SUPPORTED_DRIVERS[url.get_backend_name()]:
            expected = " or ".join(
                f"{url.get_backend_name()}+{d}" for d in SUPPORTED_DRIVERS[url.get_backend_name()]
            )
            raise ValueError(f"unsupported driver {url.get_driver_name()!r} (use {expected})")
        return value

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'bifrost.db'}"

    @property
    def tier_roots(self) -> dict[str, str]:
        """Default storage tiers; a project may override them in its own configuration."""
        return {
            "hot": self.hot_root or str(self.home / "storage" / "hot"),
            "archive": self.archive_root or str(self.home / "storage" / "archive"),
        }


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"BIFROST_{field.upper()}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
