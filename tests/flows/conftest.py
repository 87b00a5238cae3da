"""A real Prefect server for the flow tests (one per session), and the environment a flow's
tasks read their settings from.

Prefect reads its settings when it is imported: PREFECT_HOME is pointed at a temporary
folder before that, so the tests never write to ~/.prefect.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bifrost-test-prefect-"))

# The production, settings and delivery fixtures are shared with tests/ingest.
from deployments.local_server import ServerDidNotStart, local_prefect_server
from tests.support.ingest import (
    OPERATOR,
    delivery,
    production,
    s3_endpoint,
    s3_settings,
    settings,
)
from tests.support.services import service_missing

__all__ = ["delivery", "production", "s3_endpoint", "s3_settings", "settings"]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; yields the API URL."""
    try:
        with local_prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
            yield url
    except ServerDidNotStart as exc:
        service_missing("Prefect server", str(exc))


@pytest.fixture
def prefect_server(prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Flows run in this process report to the session's Prefect server: in this context, and
    in Prefect's background workers (events, logs), which read the environment."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield prefect_api


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> dict[str, str]:
    """BIFROST_* variables for the flow's tasks (they read settings from the environment), and
    for the CLI, which acts as OPERATOR."""
    env = {
        "BIFROST_HOME": str(settings.home),
        "BIFROST_DATABASE_URL": settings.database,
        "BIFROST_HOT_ROOT": settings.tier_roots["hot"],
        "BIFROST_ARCHIVE_ROOT": settings.tier_roots["archive"],
        "BIFROST_USER": OPERATOR,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
