"""Ingest into a tier on a real S3 endpoint (moto's server): store, register, rerun, verify."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import StorageError
from bifrost_core.ingest import upkeep
from bifrost_core.storage.blobstore import blob_key
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import Version
from bifrost_core.versions.service import file_locations
from tests.support.ingest import counts, frames, planned, run_planned
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint
from tests.support.services import free_port


def test_ingest_to_s3_then_rerun_then_verify_finds_damage(
    database, production, s3_settings, s3_endpoint: S3Endpoint, tmp_path
):
    settings = s3_settings
    paths = frames(tmp_path / "src", "plate", 1001, 1003, size=6000)
    big = frames(tmp_path / "big", "plate", 1001, 1001, size=5 << 20)  # above the small-file path
    result = run_planned(database, settings, [planned(paths), planned(big, shot="sh020")], source="s3")
    assert not result.problems
    assert [v.files for v in result.created] == [3, 1]
    assert all(v for v in result.created)
    assert result.bytes_copied == 3 * 6000 + (5 << 20)
    report = upkeep.verify(database, settings)
    assert (report.checked, report.ok) == (4, True)
    # On an object store a published path is not made: it maps to the blob's URL.
    with UnitOfWork(database) as uow:
        version = uow.session.get(Version, result.created[0].version_id)
        representation = version.representations[0]
        where = file_locations(uow.session, representation)
        first = representation.files[0]
        name, published = first.name, first.published_path
        digest = uow.session.get(Blob, first.blob_id).hash
    assert published == "DEMO/shots/sq010/sh010/plate/main/v001/plate.1001.exr"
    assert where[name] == {"hot": f"{settings.tier_roots['hot']}/{blob_key(digest)}"}

    before = counts(database)
    rerun = run_planned(database, settings, [planned(paths), planned(big, shot="sh020")], source="s3")
    assert (rerun.created, rerun.known, rerun.files_copied) == ([], 2, 0)
    assert counts(database) == before

    client = boto3.client("s3", **s3_endpoint.client_kwargs())
    prefix = settings.tier_roots["hot"].removeprefix(f"s3://{s3_endpoint.bucket}/")
    digests = sorted(
        obj["Key"].rsplit("/", 1)[-1]
        for obj in client.list_objects_v2(Bucket=s3_endpoint.bucket, Prefix=f"{prefix}/blobs/")["Contents"]
    )
    client.put_object(Bucket=s3_endpoint.bucket, Key=f"{prefix}/{blob_key(digests[0])}", Body=b"bit rot")
    client.delete_object(Bucket=s3_endpoint.bucket, Key=f"{prefix}/{blob_key(digests[1])}")
    found = {f.hash: f.problem for f in upkeep.verify(database, settings).findings}
    assert found[digests[1]] == "missing"
    assert found[digests[0]].startswith("corrupt")
    assert len(found) == 2


@pytest.fixture
def fresh_s3fs() -> Iterator[None]:
    """fsspec reuses a filesystem made with the same arguments, whatever AWS_* say now: one
    from an earlier test would hide options that were not applied, and one made here, with
    AWS_* leading nowhere, would break later tests."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_tier_gets_its_endpoint_and_credentials_from_the_storage_options(
    database, production, s3_endpoint: S3Endpoint, tmp_path, monkeypatch, fresh_s3fs
):
    """Only BIFROST_STORAGE_OPTIONS leads to the endpoint: the AWS_* variables point nowhere."""
    from bifrost_core.config import load_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    hot = s3_endpoint.url(f"opts-{tmp_path.name}")
    options = {
        "endpoint_url": s3_endpoint.endpoint_url,
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "client_kwargs": {"region_name": REGION},
    }
    settings = load_settings(
        home=tmp_path / "home",
        database_url=database.url,
        hot_root=hot,
        archive_root=str(tmp_path / "archive"),
        storage_options={f"s3://{s3_endpoint.bucket}": options},
    )
    paths = frames(tmp_path / "src", "plate", 1001, 1002, size=5000)
    result = run_planned(database, settings, [planned(paths)], source="opts")
    assert (result.problems, result.files_copied) == ([], 2)
    assert upkeep.verify(database, settings).ok
    assert upkeep.physical(settings, [(hot, "hot")]) == [("hot", hot, 2 * 5000)]
    client = boto3.client("s3", **s3_endpoint.client_kwargs())
    listed = client.list_objects_v2(Bucket=s3_endpoint.bucket, Prefix=f"opts-{tmp_path.name}/blobs/")
    assert len(listed["Contents"]) == 2

    # Without the options the same tier is reached through AWS_*, which lead nowhere.
    bare = load_settings(home=tmp_path / "home", database_url=database.url, hot_root=hot)
    with pytest.raises(StorageError, match="storage tier hot"):
        upkeep.verify(database, bare)
