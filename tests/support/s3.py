"""A real S3 endpoint for tests: moto's server in its own process on a free loopback port.

Real HTTP through s3fs/botocore, not an in-process mock, so request signing, streaming
bodies, multipart uploads and ETags go through the same code paths as with a real store.

    with running_s3() as s3:
        store = BlobStore(s3.url("some/prefix"), storage_options=s3.storage_options)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.services import free_port

ACCESS_KEY = "bifrost-test"
SECRET_KEY = "bifrost-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 endpoint with one bucket; `storage_options` are for s3fs/fsspec."""

    endpoint_url: str
    bucket: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def url(self, prefix: str = "") -> str:
        """An fsspec URL inside the bucket: ``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables that point botocore (and so Bifrost) at this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for boto3.client("s3", ...) against this endpoint."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
        }


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    return False


@contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """Run ``python -m moto.server`` on a free loopback port; yields its endpoint URL.

    Picking a free port and binding it are two steps, so a lost race is retried.
    """
    with tempfile.TemporaryFile() as log:
        for _attempt in range(3):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                if _wait_ready(url, process, timeout):
                    yield url
                    return
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        log.seek(0)
        tail = log.read()[-2000:].decode(errors="replace")
        raise RuntimeError(f"moto server did not start:\n{tail}")


@contextmanager
def running_s3(bucket: str = "bifrost-test") -> Iterator[S3Endpoint]:
    """A moto S3 server with `bucket` created; the endpoint for clients and s3fs."""
    import s3fs

    with moto_server() as url:
        options = {
            "endpoint_url": url,
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"region_name": REGION},
        }
        s3fs.S3FileSystem(**options).call_s3("create_bucket", Bucket=bucket)
        yield S3Endpoint(endpoint_url=url, bucket=bucket, storage_options=options)
