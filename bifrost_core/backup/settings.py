"""The backup settings, `BIFROST_BACKUP_*` variables: where SQLite copies go, and how
pgBackRest is run for PostgreSQL. Their own object, beside `bifrost_core.config.Settings`,
since only `bifrost backup`, its flow and the metrics read them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bifrost_core.config import Settings
from bifrost_core.errors import ConfigError


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BIFROST_BACKUP_", env_file=".env", extra="ignore")

    root: str = Field(
        default="", description="Folder of the SQLite database's backups; $BIFROST_HOME/backups if empty"
    )
    pgbackrest_config: str = Field(
        default="/etc/pgbackrest/pgbackrest.conf",
        description="pgBackRest's configuration file (its repository and the cluster's pg1-path)",
    )
    stanza: str = Field(default="bifrost", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    run_as: str = Field(
        default="",
        pattern=r"^([a-z_][a-z0-9_-]{0,31})?$",
        description="OS user pgBackRest runs as (the server's, e.g. postgres) when Bifrost runs as root",
    )
    pgbackrest: str = Field(default="pgbackrest", description="The pgBackRest program")

    def sqlite_root(self, settings: Settings) -> Path:
        return Path(self.root).expanduser() if self.root else settings.home / "backups"


def load_backup_settings() -> BackupSettings:
    try:
        return BackupSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"BIFROST_BACKUP_{str(first['loc'][0]).upper()}: {first['msg']}") from None
