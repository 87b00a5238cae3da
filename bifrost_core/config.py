"""Settings: one object, read from `BIFROST_*` variables and an optional `.env`.

The embedded default needs nothing set: a SQLite file and local folders under
`BIFROST_HOME`. A studio points the same settings at PostgreSQL, Redis, S3 and
OpenSearch.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bifrost_core.errors import ConfigError
from bifrost_core.replication.roots import check_replica_roots, parse_replicas
from bifrost_core.storage.roots import normalise_root

SUPPORTED_DATABASES = ("sqlite", "postgresql")
# The synchronous drivers that are installed; any other one fails later with a traceback.
SUPPORTED_DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BIFROST_", env_file=".env", extra="ignore", validate_default=True
    )

    home: Path = Field(default=Path("~/.bifrost"), description="Where the embedded default keeps its files")
    database_url: str = Field(default="", description="SQLAlchemy URL; a SQLite file in the home when empty")
    database_replica_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "PostgreSQL streaming replicas of database_url, as a JSON list or comma-separated: "
            "the API reads from them"
        ),
    )
    database_replica_max_lag_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="A replica further behind than this takes no reads"
    )
    hot_root: str = Field(default="", description="Root URL of the hot tier (a folder or an fsspec URL)")
    archive_root: str = Field(default="", description="Root URL of the archive tier")
    storage_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        repr=False,  # may hold credentials
        description=(
            "fsspec options of the tiers under each URL prefix, as JSON: "
            '{"s3://studio-archive": {"profile": "archive"}, "s3://": {"endpoint_url": "..."}}'
        ),
    )
    storage_allowed_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders and URL prefixes a project's storage tiers may be inside, as a JSON list or "
            "comma-separated; empty: the hot and archive roots and $BIFROST_HOME/storage"
        ),
    )
    storage_replicas: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Replicas of each tier, copied to by the `replicate` flow, as JSON: "
            '{"hot": ["s3://dr-hot", "/mnt/dr/hot"]}; each inside the allowed roots'
        ),
    )
    render_root: str = Field(
        default="",
        description="Where render jobs write their frames (<root>/<PROJECT>/job-<id>); home/render if empty",
    )
    redis_url: str = Field(
        default="", description="Redis URL for cache and rate limits; in-process when empty"
    )
    db_pool_size: int = Field(default=5, ge=1, le=200)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool = Field(
        default=False, description="Flow runs log JSON lines with their request id, user and project"
    )
    api_rate_limit: int = Field(
        default=6000, ge=0, description="API requests per minute per user (all their tokens); 0: off"
    )
    api_auth_failures: int = Field(
        default=30,
        ge=0,
        description="Failed token checks per minute per client address before it is refused; 0: off",
    )
    api_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest API request body")
    # Who the CLI acts as (see bifrost_core/users/identity.py): a token, else a username.
    token: str = Field(default="", repr=False, description="API token the CLI acts as; wins over `user`")
    user: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$",
        description="Username the CLI acts as; the operating-system login name when empty",
    )
    prefect_port: int = Field(
        default=4200, ge=1, le=65535, description="Port of the Prefect server `bifrost server start` runs"
    )
    prefect_server: str = Field(
        default="auto",
        pattern="^(auto|ephemeral)$",
        description=(
            "Which Prefect server flow commands use when PREFECT_API_URL is unset: auto (the home's "
            "persistent server, started on first use) or ephemeral (a server per command)"
        ),
    )
    api_trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated IPs or networks of the reverse proxies whose X-Forwarded-For the API "
            "believes; empty: none, the peer address is the client"
        ),
    )

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

    @field_validator("database_replica_urls", mode="after")
    @classmethod
    def _check_replica_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            cls._check_database_url(url)
            if make_url(url).get_backend_name() != "postgresql":
                raise ValueError(f"a read replica is a PostgreSQL database: {url!r}")
        return value

    @model_validator(mode="after")
    def _replicas_of_postgresql(self) -> Settings:
        if self.database_replica_urls and not self.database.startswith("postgresql"):
            raise ValueError(
                "BIFROST_DATABASE_REPLICA_URLS needs BIFROST_DATABASE_URL to name their PostgreSQL primary"
            )
        return self

    @field_validator("storage_options", mode="after")
    @classmethod
    def _check_storage_options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for prefix in value:
            if "://" not in prefix:
                raise ValueError(
                    f"{prefix!r} is not a URL prefix such as s3://bucket (local folders take no options)"
                )
        return value

    @field_validator("storage_allowed_roots", "database_replica_urls", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a valid JSON list") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("storage_allowed_roots", mode="after")
    @classmethod
    def _normalise_allowed_roots(cls, value: list[str]) -> list[str]:
        return [normalise_root(root) for root in value]

    @field_validator("storage_replicas", mode="before")
    @classmethod
    def _parse_replicas(cls, value: object) -> object:
        return parse_replicas(value) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _replicas_elsewhere(self) -> Settings:
        primaries = {name: [normalise_root(root)] for name, root in self.tier_roots.items()}
        check_replica_roots(self.storage_replicas, primaries, self.allowed_storage_roots)
        return self

    @property
    def replica_roots(self) -> list[str]:
        """Every tier's replica roots, normalised."""
        return [root for roots in self.storage_replicas.values() for root in roots]

    @property
    def allowed_storage_roots(self) -> list[str]:
        """The roots a project's storage tiers must be inside, normalised."""
        if self.storage_allowed_roots:
            return list(self.storage_allowed_roots)
        defaults = [*self.tier_roots.values(), str(self.home / "storage")]
        return list(dict.fromkeys(normalise_root(root) for root in defaults))

    @field_validator("api_trusted_proxies", mode="after")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        proxies = [item.strip() for item in value.split(",") if item.strip()]
        for proxy in proxies:
            try:
                # As uvicorn reads them: a network with host bits set would silently match nothing.
                ipaddress.ip_network(proxy) if "/" in proxy else ipaddress.ip_address(proxy)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network such as 10.0.0.0/8") from None
        return ",".join(proxies)

    def storage_options_for(self, url: str) -> dict[str, Any]:
        """The options of the longest configured prefix that `url` is at or under, else none.

        A prefix matches whole path segments: ``s3://show`` covers ``s3://show/hot`` but not
        ``s3://showreel``; ``s3://`` covers every S3 URL.
        """
        matching = [
            prefix
            for prefix in self.storage_options
            if url == prefix.rstrip("/") or url.startswith(prefix if prefix.endswith("/") else f"{prefix}/")
        ]
        return dict(self.storage_options[max(matching, key=len)]) if matching else {}

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'bifrost.db'}"

    @property
    def render_output_root(self) -> Path:
        return Path(self.render_root).expanduser() if self.render_root else self.home / "render"

    @property
    def tier_roots(self) -> dict[str, str]:
        """Default storage tiers; a project may override them in its own configuration."""
        return {
            "hot": self.hot_root or str(self.home / "storage" / "hot"),
            "archive": self.archive_root or str(self.home / "storage" / "archive"),
        }

    @property
    def home_tier_roots(self) -> dict[str, str]:
        """The default tiers whose root no setting names: folders Bifrost chose under its
        home, so it creates them when needed. A root that is configured must exist."""
        configured = {"hot": self.hot_root, "archive": self.archive_root}
        return {name: root for name, root in self.tier_roots.items() if not configured[name]}


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        # Raised for a variable that should hold JSON and does not; the message names the field.
        found = re.search(r'field "(\w+)"', str(exc))
        field = found.group(1) if found else "settings"
        raise ConfigError(f"BIFROST_{field.upper()}: not valid JSON") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a rule across settings: its message names them
            raise ConfigError(message) from None
        raise ConfigError(f"BIFROST_{str(first['loc'][0]).upper()}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
