"""A database backup as one task: `bifrost backup create`'s work (bifrost_core.backup)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bifrost_core.backup import service
from bifrost_core.backup.settings import load_backup_settings
from bifrost_core.config import load_settings


@task(name="backup-database", cache_policy=NO_CACHE)
def backup_database(kind: str) -> service.Created:
    return service.create(load_settings(), load_backup_settings(), kind=kind)
