"""Fast list pages (straight from rows) answer exactly what the ORM path would."""

from __future__ import annotations

import json

import pytest

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
from tests.support.world import World


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


def test_list_filters(client, world: World) -> None:
    headers = world.headers("coordinator")
    project = f"/projects/{world.a.project_id}"
    artist = world.user_ids["artist"]
    mine = client.post(
        "/tasks",
        json={"task_type": "comp", "shot_id": world.a.shot_id, "assignee_ids": [artist]},
        headers=headers,
    ).json()
    prop = client.post(
        f"{project}/assets", json={"code": "lamp", "asset_type": "prop"}, headers=headers
    ).json()

    def ids(path: str, **params) -> list[int]:
        answer = client.get(f"{project}/{path}", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert ids("tasks", assignee_id=artist) == [mine["id"]]
    assert ids("tasks", task_type_id=mine["task_type_id"]) == [mine["id"]]
    assert ids("tasks", status="wtg") == sorted([world.a.task_id, mine["id"]])
    assert ids("tasks", shot_id=world.a.shot_id, status="ip") == []
    assert ids("assets", asset_type_id=prop["asset_type_id"]) == [prop["id"]]
    assert ids("shots", sequence_id=world.a.sequence_id) == [world.a.shot_id]
    assert ids("shots", sequence_id=world.b.sequence_id) == []  # another project's sequence: nothing leaks

    # updated_since: only what changed at or after the given time (offsets are honoured).
    touched = client.patch(f"/shots/{world.a.shot_id}", json={"description": "new"}, headers=headers).json()
    assert ids("shots", updated_since=touched["updated_at"]) == [world.a.shot_id]
    later = touched["updated_at"].replace("Z", "+00:00")
    ahead = later[:-6] + "+01:00"  # the same wall time an hour east: an hour earlier in UTC
    assert ids("shots", updated_since=ahead) == [world.a.shot_id]
    assert ids("assets", updated_since=touched["updated_at"]) == []
