"""Replication benchmark: a local hot tier replicated to a moto S3 server and to a folder.

    .venv/bin/python -m bench.replicate [--files 20] [--mib 16]

(from the repository root). Stores `--files` files of `--mib` MiB in a hot tier on a fresh
SQLite database (blob records as an ingest leaves them), then runs the replication (copy,
read back, BLAKE3, record) to an S3 replica on a local moto server and to a folder replica,
and, as references, boto3's `upload_file` of the same files to the same endpoint and `cp -r`
of the tier. Prints MB/s of each, the ratio to its reference and the process's peak RSS.
Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import boto3

from bifrost_core.config import load_settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.replication import service as replication
from bifrost_core.replication.models import BlobReplica
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.models import Blob, BlobLocation
from tests.support.s3 import running_s3

MiB = 1 << 20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mib", type=int, default=16)
    args = parser.parse_args()
    total = args.files * args.mib * MiB
    with tempfile.TemporaryDirectory(prefix="bench-replicate-") as work, running_s3("dr-bench") as s3:
        root = Path(work)
        hot, folder, sources = root / "hot", root / "dr", root / "src"
        for path in (hot, folder, sources):
            path.mkdir()
        database = Database(f"sqlite:///{root / 'bifrost.db'}")
        migrate.upgrade(database)
        store = BlobStore(hot, name="hot")
        files = []
        for i in range(args.files):
            path = sources / f"f{i:03d}.bin"
            path.write_bytes(os.urandom(args.mib * MiB))
            files.append(path)
        with UnitOfWork(database) as uow:
            for put in store.put_files(files):
                blob = Blob(hash=put.digest, size=put.size)
                uow.session.add(blob)
                uow.session.flush()
                uow.session.add(BlobLocation(blob_id=blob.id, tier="hot", url=put.url))
            uow.commit()
        common = {
            "home": root / "home",
            "database_url": database.url,
            "hot_root": str(hot),
            "archive_root": str(hot),
            "storage_options": {s3.url(): s3.storage_options},
            "storage_allowed_roots": [str(hot), s3.url(), str(folder)],
        }
        print(f"{args.files} files of {args.mib} MiB ({total / MiB:,.0f} MiB) from a local hot tier")

        # Peak RSS is a high-water mark: read before the references run (boto3's transfer
        # threads have buffers of their own), after each replica.
        print(f"  peak RSS before the replication (the data set made): {peak_rss_mb():,.0f} MB")
        timings = {}
        for name, replica in (("folder", str(folder)), ("S3", s3.url("replica"))):
            settings = load_settings(**common, storage_replicas={"hot": [replica]})
            started = time.perf_counter()
            report = replication.replicate(database, settings, actor=SYSTEM)
            took = time.perf_counter() - started
            assert report.ok, report.problems  # a failed run has no figure worth printing
            # A rerun after a crash that lost the records: the copies are found and checked.
            with UnitOfWork(database) as uow:
                uow.session.execute(BlobReplica.__table__.delete())
                uow.commit()
            started = time.perf_counter()
            replication.replicate(database, settings, actor=SYSTEM)
            timings[name] = (took, time.perf_counter() - started)
            print(f"  peak RSS after the {name} replica: {peak_rss_mb():,.0f} MB")
        client = boto3.client("s3", **s3.client_kwargs())
        started = time.perf_counter()
        for path in files:
            client.upload_file(str(path), s3.bucket, f"reference/{path.name}")
        upload = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(hot / "blobs"), str(root / "cp-copy")], check=True)
        subprocess.run(["sync"], check=True)
        copy = time.perf_counter() - started

        for name, reference, what in (("S3", upload, "boto3 upload_file"), ("folder", copy, "cp -r + sync")):
            took, rerun = timings[name]
            print(
                f"  {name}: {total / MiB / took:,.1f} MB/s (copy, read back, BLAKE3, record) against "
                f"{total / MiB / reference:,.1f} MB/s of {what}: {reference / took:.2f}x; "
                f"a rerun with the records lost: {total / MiB / rerun:,.1f} MB/s"
            )

        database.dispose()
        shutil.rmtree(root / "cp-copy", ignore_errors=True)


if __name__ == "__main__":
    main()
