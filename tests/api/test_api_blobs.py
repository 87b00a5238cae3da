"""A version may point only at content its author can already read: another project's blob is
refused exactly like a hash that is not stored, so the answer tells nothing about other projects."""

from __future__ import annotations

from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.schemas import MembershipCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate
from tests.support.world import World

ONLY_IN_A = "cd" * 32
STORED_UNUSED = "ee" * 32
UNKNOWN = "ef" * 32


def _store(database, world: World) -> None:
    """A blob held by a version of project A only, and one held by no version at all."""
    with UnitOfWork(database) as uow:
        record_blobs(uow.session, [(h, 3, f"file:///{h}") for h in (ONLY_IN_A, STORED_UNUSED)], "hot")
        versions.create_version(
            uow.session,
            actor=SYSTEM,
            data=VersionCreate(task_id=world.a.task_id, representations=[_representation(ONLY_IN_A)]),
        )
        uow.commit()


def _representation(blob_hash: str) -> RepresentationIn:
    return RepresentationIn(name="movie", kind="movie", files=[FileIn(name="a.mov", blob_hash=blob_hash)])


def _publish(client, world: World, who: str, blob_hash: str):
    body = {"task_id": world.b.task_id, "representations": [_representation(blob_hash).model_dump()]}
    return client.post("/versions", json=body, headers=world.headers(who))


def _versions_of_b(database, world: World) -> int:
    with UnitOfWork(database) as uow:
        return uow.session.scalar(
            select(func.count(Version.id)).where(Version.project_id == world.b.project_id)
        )


def test_another_projects_blob_is_refused_like_an_unknown_one(client, database, world: World) -> None:
    _store(database, world)
    before = _versions_of_b(database, world)

    answers = {h: _publish(client, world, "b_coordinator", h) for h in (ONLY_IN_A, STORED_UNUSED, UNKNOWN)}
    for blob_hash, answer in answers.items():
        assert answer.status_code == 422, answer.text
        # Word for word the same answer, but for the hash it names.
        assert answer.json() == {
            "error": {
                "code": "invalid_input",
                "message": "1 file(s) point at content that is not stored or not visible to you, "
                f"e.g. {blob_hash}",
                "details": {},
            }
        }
    assert _versions_of_b(database, world) == before

    # A member of both projects may: it can read a version of A that holds the content.
    with UnitOfWork(database) as uow:
        users.set_membership(
            uow.session,
            actor=SYSTEM,
            project_id=world.a.project_id,
            data=MembershipCreate(user_id=world.user_ids["b_coordinator"], role="client"),
        )
        uow.commit()
    created = _publish(client, world, "b_coordinator", ONLY_IN_A)
    assert created.status_code == 201, created.text
    representation = created.json()["representations"][0]["id"]
    read = client.get(f"/representations/{representation}", headers=world.headers("b_coordinator"))
    assert set(read.json()["files"][0]["locations"]) == {"hot"}
    # Content no version holds stays out of reach of everyone but an admin.
    assert _publish(client, world, "b_coordinator", STORED_UNUSED).status_code == 422
    assert _publish(client, world, "admin", STORED_UNUSED).status_code == 201
    assert _publish(client, world, "admin", UNKNOWN).status_code == 422
