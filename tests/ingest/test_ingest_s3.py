"""Ingest into a tier on a real S3 endpoint (moto's server): store, register, rerun, verify."""

from __future__ import annotations

import boto3
from ingest_helpers import frames
from s3server import S3Endpoint
from test_ingest_register import counts, planned

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest import pipeline, upkeep
from bifrost_core.storage.blobstore import blob_key
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import Version
from bifrost_core.versions.service import file_locations


def test_ingest_to_s3_then_rerun_then_verify_finds_damage(
    database, production, s3_settings, s3_endpoint: S3Endpoint, tmp_path
):
    settings = s3_settings
    paths = frames(tmp_path / "src", "plate", 1001, 1003, size=6000)
    big = frames(tmp_path / "big", "plate", 1001, 1001, size=5 << 20)  # above the small-file path
    result = pipeline.run_batch(
        database,
        settings,
        project="DEMO",
        tier="hot",
        source="s3",
        versions=[planned(paths), planned(big, shot="sh020")],
    )
    assert not result.problems
    assert [v.files for v in result.created] == [3, 1]
    assert all(v for v in result.created)
    assert result.bytes_copied == 3 * 6000 + (5 << 20)
    report = upkeep.verify(database)
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
    rerun = pipeline.run_batch(
        database,
        settings,
        project="DEMO",
        tier="hot",
        source="s3",
        versions=[planned(paths), planned(big, shot="sh020")],
    )
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
    found = {f.hash: f.problem for f in upkeep.verify(database).findings}
    assert found[digests[1]] == "missing"
    assert found[digests[0]].startswith("corrupt")
    assert len(found) == 2
