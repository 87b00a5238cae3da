"""A real farm for the farm tests, once per session: a Prefect server on a free loopback port,
the registry's deployments (`bifrost deploy`), one CPU worker and two GPU workers (`bifrost
worker`, hosts `h1` with 1 GPU and `h2` with 2) as processes, on a throwaway PostgreSQL
database with a project to render for. Every process is stopped at the end.

The workers poll every second and chunks beat every second (crashed after 3 s without), so
a job of a few chunks takes seconds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bifrost-test-prefect-"))

from deployments.local_server import ServerDidNotStart
from tests.support.farm import Farm, running_farm
from tests.support.services import service_missing


@pytest.fixture(scope="session")
def farm(tmp_path_factory: pytest.TempPathFactory, make_pg_database) -> Iterator[Farm]:
    try:
        with running_farm(tmp_path_factory.mktemp("farm"), make_pg_database) as farm:
            yield farm
    except ServerDidNotStart as exc:
        service_missing("Prefect server", str(exc))
