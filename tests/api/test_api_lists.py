"""Fast list pages (straight from rows) answer exactly what the ORM path would."""

from __future__ import annotations

import json

import pytest
from api_world import World

from api.params import page, rows_page
from bifrost_core.assets.repository import AssetRepository, CastingRepository
from bifrost_core.assets.schemas import AssetRead, CastingRead
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.events.repository import EventRepository
from bifrost_core.events.schemas import EventRead
from bifrost_core.projects.repository import (
    EpisodeRepository,
    ProjectRepository,
    SequenceRepository,
    ShotRepository,
)
from bifrost_core.projects.schemas import EpisodeRead, ProjectRead, SequenceRead, ShotRead
from bifrost_core.scope import SYSTEM


@pytest.mark.parametrize(
    ("repository", "schema"),
    [
        (ProjectRepository, ProjectRead),
        (EpisodeRepository, EpisodeRead),
        (SequenceRepository, SequenceRead),
        (ShotRepository, ShotRead),
        (AssetRepository, AssetRead),
        (CastingRepository, CastingRead),
        (EventRepository, EventRead),
    ],
)
def test_rows_page_equals_the_schema_page(database, world: World, repository, schema) -> None:
    with UnitOfWork(database) as uow:
        repo = repository(uow.session, SYSTEM)
        for limit in (1, 1000):
            expected = page(schema, repo.list(limit=limit), limit).model_dump(mode="json")
            assert json.loads(rows_page(repo, schema, after=None, limit=limit)) == expected
