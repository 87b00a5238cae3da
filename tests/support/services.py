"""The servers the tests run against (PostgreSQL, Redis, S3, Prefect) and the rule for when
one is missing: skip on a laptop, fail under CI (`CI=true` or `BIFROST_REQUIRE_SERVICES=1`),
so a missing server never passes silently."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("BIFROST_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BIFROST_TEST_REDIS", "redis://127.0.0.1:6379/15")
SERVICES_REQUIRED = os.environ.get("CI") == "true" or os.environ.get("BIFROST_REQUIRE_SERVICES") == "1"


def service_missing(what: str, reason: str) -> None:
    if SERVICES_REQUIRED:
        pytest.fail(f"{what} is required here but unreachable: {reason}", pytrace=False)
    pytest.skip(f"{what} unreachable: {reason}")


def free_port() -> int:
    """A loopback port free now (a server started on it may still lose a race for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mount` (made) with mount `options` for the block (needs root)."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        service_missing("a tmpfs mount (needs root)", done.stderr.decode().strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
