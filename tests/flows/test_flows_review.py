"""The review-media flow: run here on several versions (a bad one does not stop the others),
and started by itself on a real Prefect server with a worker when an ingest creates a version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput, NotFound
from bifrost_core.events.models import Event
from bifrost_core.media.service import PROXY, REVIEW_NAMES
from bifrost_core.users.models import User
from bifrost_core.versions.models import Representation, Version
from deployments.flows import ensure_pools, register
from flows.registry import FLOWS, ROOT, WORK_POOL
from tests.support.ingest import OPERATOR
from tests.support.media import ffprobe, png_frames, publish
from tests.support.runs import stop_worker

pytestmark = pytest.mark.usefixtures("ffmpeg_installed")
BIFROST = str(Path(sys.executable).parent / "bifrost")


def review_representations(database, version_id: int) -> list[str]:
    with UnitOfWork(database) as uow:
        return sorted(
            uow.session.scalars(
                select(Representation.name).where(
                    Representation.version_id == version_id, Representation.name.in_(REVIEW_NAMES)
                )
            )
        )


def test_a_bad_version_does_not_stop_the_others(
    database, production, settings, flow_env, prefect_server, tmp_path
) -> None:
    from flows.review import review_media

    good = publish(database, settings, png_frames(tmp_path / "comp", 3, size=(64, 36)))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("not media")
    bad = publish(database, settings, [tmp_path / "notes" / "notes.txt"], shot="sh020")
    with pytest.raises(InvalidInput, match=f"^version {bad} has no frames or movie"):
        review_media(actor=OPERATOR, project="DEMO", versions=[bad, good])
    assert review_representations(database, good) == sorted(REVIEW_NAMES)
    assert review_representations(database, bad) == []
    with UnitOfWork(database) as uow:
        assert "has no frames or movie" in uow.session.get(Version, bad).media_error
        # Who asked is recorded: the run's actor on the event.
        event = uow.session.scalars(select(Event).where(Event.kind == "version.review_media")).one()
        assert uow.session.get(User, event.actor_id).username == OPERATOR

    # A version of another project (or none) is not found in this one; nothing is made.
    with pytest.raises(NotFound, match="version 999999 not found"):
        review_media(actor=OPERATOR, project="DEMO", versions=[999999])


@pytest.mark.slow
@pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_an_ingest_on_a_server_with_a_worker_gets_review_media_unasked(
    database, production, settings, flow_env, prefect_server, tmp_path
) -> None:
    ensure_pools({WORK_POOL})
    register([FLOWS["review-media"]])
    worker = start_worker(prefect_server, flow_env, tmp_path)
    try:
        delivery = tmp_path / "delivery"
        png_frames(delivery / "sq010" / "sh010" / "comp", 24, size=(320, 180))
        # `bifrost ingest` as an operator runs it: its own process, reporting to the server.
        ingested = subprocess.run(
            [BIFROST, "ingest", str(delivery), "-p", "DEMO"],
            env=worker_environment(prefect_server, flow_env, tmp_path / "prefect-cli"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ingested.returncode == 0, ingested.stderr
        with UnitOfWork(database) as uow:
            (version_id,) = uow.session.scalars(select(Version.id)).all()
        deadline = time.monotonic() + 240
        while PROXY not in review_representations(database, version_id):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        stop_worker(worker)
        remove_trigger()
    assert review_representations(database, version_id) == sorted(REVIEW_NAMES)
    with UnitOfWork(database) as uow:
        version = uow.session.get(Version, version_id)
        proxy = next(rep.meta for rep in version.representations if rep.name == PROXY)
        event = uow.session.scalars(select(Event).where(Event.kind == "version.review_media")).one()
        # The triggered run acted as whoever ingested.
        assert uow.session.get(User, event.actor_id).username == OPERATOR
        digest = event.payload["proxy"]
    assert proxy["frames"] == 24
    path = Path(settings.tier_roots["hot"]) / "blobs"
    (stored,) = [item for item in path.rglob(digest)]
    probe = ffprobe(stored)
    assert (probe["codec_name"], probe["width"], probe["height"], int(probe["nb_read_packets"])) == (
        "h264",
        320,
        180,
        24,
    )


def start_worker(api: str, flow_env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    """`bifrost worker` on the CPU pool, polling every second, in a session of its own, once it
    polls (it gives up at once on a server slower than 0.3 s to answer: on a loaded machine,
    started again)."""
    log = tmp_path / "worker.log"
    for _ in range(5):
        worker = _worker(api, flow_env, tmp_path)
        deadline = time.monotonic() + 120
        while worker.poll() is None and "started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        if worker.poll() is None:
            return worker
        time.sleep(2)
    raise AssertionError(log.read_text()[-3000:])


def worker_environment(api: str, flow_env: dict[str, str], prefect_home: Path) -> dict[str, str]:
    """This environment without its Bifrost and Prefect settings, plus the test's and the server's."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(("BIFROST_", "PREFECT_"))
    }
    return {
        **inherited,
        **flow_env,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }


def _worker(api: str, flow_env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [BIFROST, "worker", "--pool", WORK_POOL],
        env=worker_environment(api, flow_env, tmp_path / "prefect-worker"),
        cwd=ROOT,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def remove_trigger() -> None:
    """The session's server keeps no trigger: later tests' ingests would start runs no one takes."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(FLOWS["review-media"].deployment)
        client.delete_deployment(deployment.id)
        for automation in client.read_automations_by_name("review media of each new version"):
            client.delete_automation(automation.id)
