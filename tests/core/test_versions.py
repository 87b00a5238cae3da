"""Versions: gapless numbers per (task, variant), representations on registered blobs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput, NotFound
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.models import Blob
from bifrost_core.versions import service as versions
from bifrost_core.versions.models import RepresentationFile, Version, VersionCounter
from bifrost_core.versions.repository import RepresentationRepository, VersionRepository
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate, VersionRead, VersionUpdate


def publish(session, task, **fields):
    return versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id, **fields))


def test_numbers_are_gapless_per_task_and_variant(session, build):
    _, shot, comp = build.shot_task()
    light = build.task(shot=shot, task_type="light")
    numbers = [publish(session, comp).number for _ in range(3)]
    alt = publish(session, comp, variant="alt")
    assert numbers == [1, 2, 3]
    assert alt.number == 1
    assert publish(session, light).number == 1
    assert VersionRepository(session).latest(comp.id, "main").number == 3
    assert VersionRepository(session).latest(comp.id, "nope") is None


def test_version_copies_entity_and_author(session, build):
    project, shot, task = build.shot_task()
    user = build.user("ann")
    build.member(project, user)
    version = versions.create_version(
        session,
        actor=build.actor(user),
        data=VersionCreate(task_id=task.id, comment="first", source="/w/a.nk"),
    )
    read = VersionRead.model_validate(version)
    assert (read.project_id, read.shot_id, read.asset_id) == (project.id, shot.id, None)
    assert (read.author_id, read.comment, read.source, read.status) == (
        user.id,
        "first",
        "/w/a.nk",
        "pending_review",
    )
    asset_task = build.task(asset=build.asset(project), task_type="model")
    on_asset = publish(session, asset_task)
    assert (on_asset.asset_id, on_asset.shot_id) == (asset_task.asset_id, None)


def test_rolled_back_publish_gives_its_number_back(database, uow, build):
    _, _, task = build.shot_task()
    assert publish(uow.session, task).number == 1
    uow.commit()
    with UnitOfWork(database) as failed:
        assert publish(failed.session, task).number == 2
        # no commit: leaving the block rolls the publish back
    with UnitOfWork(database) as retry:
        assert publish(retry.session, task).number == 2
        retry.commit()
    with UnitOfWork(database) as check:
        numbers = check.session.scalars(select(Version.number).where(Version.task_id == task.id))
        assert sorted(numbers) == [1, 2]
        counter = check.session.get(VersionCounter, (task.id, "main"))
        assert counter.last_number == 2


def test_representations_refer_to_registered_blobs(session, build):
    _, _, task = build.shot_task()
    frames = [build.blob(f"frame {n}".encode()) for n in (1001, 1002)]
    movie = build.blob(b"movie")
    version = publish(
        session,
        task,
        representations=[
            RepresentationIn(
                name="exr",
                kind="frames",
                frame_in=1001,
                frame_out=1002,
                frame_padding=4,
                files=[
                    FileIn(name=f"a.{n}.exr", blob_hash=h, frame=n)
                    for n, h in zip((1001, 1002), frames, strict=True)
                ],
            ),
            RepresentationIn(name="mov", kind="movie", files=[FileIn(name="a.mov", blob_hash=movie)]),
        ],
    )
    session.expire_all()
    stored = VersionRepository(session).get(version.id)
    assert [r.name for r in stored.representations] == ["exr", "mov"]
    exr = stored.representations[0]
    assert (exr.frame_in, exr.frame_out, exr.frame_padding) == (1001, 1002, 4)
    blob_hashes = {b.id: b.hash for b in session.scalars(select(Blob))}
    assert [(f.name, f.frame, blob_hashes[f.blob_id]) for f in exr.files] == [
        ("a.1001.exr", 1001, frames[0]),
        ("a.1002.exr", 1002, frames[1]),
    ]
    assert RepresentationRepository(session).get(exr.id).version_id == version.id
    assert [r.name for r in VersionRead.model_validate(stored).representations] == ["exr", "mov"]


def test_unknown_blob_is_refused_and_uses_no_number(session, build):
    _, _, task = build.shot_task()
    missing = "0" * 64
    with pytest.raises(InvalidInput, match="not stored"):
        publish(
            session,
            task,
            representations=[
                RepresentationIn(name="mov", kind="movie", files=[FileIn(name="a.mov", blob_hash=missing)])
            ],
        )
    assert session.scalar(select(func.count(Version.id))) == 0
    assert session.scalar(select(func.count(RepresentationFile.id))) == 0
    assert publish(session, task).number == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"frame_in": 1001},  # a frame range needs both ends
        {"frame_in": 1010, "frame_out": 1001},
        {"files": []},
        {"files": [{"name": "a", "blob_hash": "a" * 64}, {"name": "a", "blob_hash": "b" * 64}]},
        {"files": [{"name": "a", "blob_hash": "NOT-A-HASH"}]},
        {"kind": "hologram"},
    ],
)
def test_bad_representation_input_is_refused(fields):
    base = {"name": "exr", "kind": "frames", "files": [{"name": "a", "blob_hash": "a" * 64}]}
    with pytest.raises(ValidationError):
        RepresentationIn(**{**base, **fields})


def test_callers_cannot_choose_numbers_or_duplicate_representation_names():
    with pytest.raises(ValidationError):
        VersionCreate(task_id=1, number=7)
    rep = {"name": "mov", "kind": "movie", "files": [{"name": "a", "blob_hash": "a" * 64}]}
    with pytest.raises(ValidationError, match="unique within a version"):
        VersionCreate(task_id=1, representations=[rep, rep])


def test_update_version_changes_only_status_and_comment(session, build):
    _, _, task = build.shot_task()
    version = publish(session, task, comment="wip", source="/a.nk")
    versions.update_version(session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(comment="final"))
    assert (version.comment, version.status, version.number, version.source) == (
        "final",
        "pending_review",
        1,
        "/a.nk",
    )
    versions.update_version(
        session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(status="approved")
    )
    assert (version.comment, version.status) == ("final", "approved")
    with pytest.raises(ValidationError):
        VersionUpdate(source="/other.nk")


def test_publish_to_unknown_task_is_not_found(session, build):
    build.project()
    with pytest.raises(NotFound, match="task 424242 not found"):
        versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=424242))
