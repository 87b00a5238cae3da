"""Fixtures of the replication tests: two real S3 endpoints (moto servers on their own
ports, one the primary's and one the replica's), a replica folder, and settings that
replicate the hot tier to both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bifrost_core.config import Settings, load_settings
from bifrost_core.db.database import Database
from tests.support.ingest import OPERATOR, production
from tests.support.s3 import S3Endpoint, running_s3
from tests.support.services import service_missing

__all__ = ["production"]


def _endpoint(bucket: str) -> Iterator[S3Endpoint]:
    try:
        with running_s3(bucket) as endpoint:
            yield endpoint
    except RuntimeError as exc:
        service_missing("S3 endpoint (moto server)", str(exc).splitlines()[0])


@pytest.fixture(scope="session")
def primary_s3() -> Iterator[S3Endpoint]:
    yield from _endpoint("studio-hot")


@pytest.fixture(scope="session")
def replica_s3() -> Iterator[S3Endpoint]:
    """A second moto server: the replica's endpoint, another process on another port."""
    yield from _endpoint("dr-hot")


@dataclass
class World:
    database: Database
    settings: Settings
    hot: str
    s3_replica: str
    folder_replica: str
    replica_s3: S3Endpoint

    def env(self) -> dict[str, str]:
        """The same settings as BIFROST_* variables (for the CLI and the flows' tasks), acting as
        the admin OPERATOR."""
        settings = self.settings
        return {
            "BIFROST_HOME": str(settings.home),
            "BIFROST_DATABASE_URL": settings.database,
            "BIFROST_HOT_ROOT": settings.hot_root,
            "BIFROST_ARCHIVE_ROOT": settings.archive_root,
            "BIFROST_STORAGE_OPTIONS": json.dumps(settings.storage_options),
            "BIFROST_STORAGE_ALLOWED_ROOTS": json.dumps(settings.storage_allowed_roots),
            "BIFROST_STORAGE_REPLICAS": json.dumps(settings.storage_replicas),
            "BIFROST_USER": OPERATOR,
        }


def make_settings(
    database: Database, tmp_path: Path, primary: S3Endpoint, replica: S3Endpoint, **overrides: object
) -> World:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    hot = str(overrides.pop("hot_root", primary.url(prefix)))
    s3_replica = replica.url(prefix)
    folder = tmp_path / "dr" / "hot"
    folder.mkdir(parents=True)
    archive = tmp_path / "tiers" / "archive"
    archive.mkdir(parents=True)
    fields: dict[str, object] = {
        "home": tmp_path / "home",
        "database_url": database.url,
        "hot_root": hot,
        "archive_root": str(archive),
        "storage_options": {
            primary.url(): primary.storage_options,
            replica.url(): replica.storage_options,
        },
        "storage_allowed_roots": [hot, str(archive), replica.url(), str(tmp_path / "dr")],
        "storage_replicas": {"hot": [s3_replica, str(folder)]},
    }
    fields.update(overrides)
    return World(database, load_settings(**fields), hot, s3_replica, str(folder.resolve()), replica)


@pytest.fixture
def world(database: Database, tmp_path: Path, primary_s3: S3Endpoint, replica_s3: S3Endpoint) -> World:
    """Hot on the primary endpoint, replicated to the replica endpoint and to a folder."""
    return make_settings(database, tmp_path, primary_s3, replica_s3)
